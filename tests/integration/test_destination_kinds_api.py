"""SFTP and rclone destinations made through the API, as the settings page does it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ApiClient
from tests.servers.rclone_remotes import RcloneRemote
from tests.servers.sshd import SSHServer

pytestmark = pytest.mark.integration


def test_an_sftp_destination_trusts_the_shown_host_key_then_saves_after_a_write_test(
    api: ApiClient, sshd: SSHServer
) -> None:
    user = sshd.users["password"]
    root = sshd.make_remote_tree(user.username, {})
    login = {
        "host": sshd.host,
        "port": sshd.port,
        "username": user.username,
        "auth": "password",
        "password": user.password,
    }
    shown = api.call("POST", "/api/ssh/test", {"source": login}).get_json()
    assert shown["status"] == "untrusted" and shown["fingerprint"] == sshd.host_key_fingerprint

    body = {"name": "NAS", "kind": "sftp", "path": f"{root}/backups", **login}
    refused = api.call("POST", "/api/destinations", body)
    assert refused.status_code == 422
    assert "host_key" in refused.get_json()["fields"]

    created = api.call("POST", "/api/destinations", {**body, "host_key": shown["host_key"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    listed = api.call("GET", "/api/destinations").get_data(as_text=True)
    assert user.password not in listed
    destination = json.loads(listed)["destinations"][0]
    assert destination["secrets"]["password"] == "set"
    assert (root / "backups").is_dir() and list((root / "backups").iterdir()) == []


def test_an_rclone_destination_saves_its_secret_options_encrypted_and_never_shows_them(
    api: ApiClient, rclone_webdav: RcloneRemote
) -> None:
    options, secret_options = rclone_webdav.settings()
    body = {
        "name": "WebDAV",
        "kind": "rclone",
        "remote_type": "webdav",
        "options": "\n".join(f"{name} = {value}" for name, value in options.items()),
        "secret_options": f"pass = {secret_options['pass']}",
        "path": "api-made",
    }
    created = api.call("POST", "/api/destinations", body)
    assert created.status_code == 201, created.get_data(as_text=True)
    listed = api.call("GET", "/api/destinations").get_data(as_text=True)
    assert rclone_webdav.password not in listed
    destination = json.loads(listed)["destinations"][0]
    assert destination["config"]["options"] == options
    assert destination["secrets"] == {"secret_options": "set"}

    wrong = api.call("POST", "/api/destinations/test", {**body, "secret_options": "pass = nope"})
    assert wrong.status_code == 422
    assert "Connection test failed" in wrong.get_json()["error"]
