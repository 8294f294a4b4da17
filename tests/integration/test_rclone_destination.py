"""rclone destinations against remotes rclone serves on loopback: what the contract
suite does not cover (settings, secrets kept off command lines and out of messages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mackuper.destinations import registry
from mackuper.destinations.base import DestinationError, DestinationUnreachable
from mackuper.destinations.rclone import RcloneDestination
from mackuper.schemas.destinations import RcloneDestination as RcloneSettings
from tests.servers.ports import free_port
from tests.servers.rclone_remotes import RcloneRemote

pytestmark = pytest.mark.integration


def _settings(remote: RcloneRemote, **changes: object) -> RcloneSettings:
    options, secret_options = remote.settings()
    body: dict[str, object] = {
        "remote_type": remote.protocol,
        "options": "\n".join(f"{name} = {value}" for name, value in options.items()),
        "secret_options": "\n".join(f"{name} = {value}" for name, value in secret_options.items()),
        "path": "from-settings/backups",
    }
    body.update(changes)
    return RcloneSettings.model_validate(body)


def test_settings_from_the_form_write_read_and_delete(rclone_webdav: RcloneRemote) -> None:
    settings = _settings(rclone_webdav)
    assert settings.problems() == {}
    public = settings.public()
    assert "secret_options" not in public
    assert rclone_webdav.password not in str(public)

    destination = registry.build("rclone", public, settings.secrets())
    destination.check_access()
    destination.put_bytes("job/manifest.json", b"{}", "application/json")

    stored = rclone_webdav.data_dir / "from-settings" / "backups" / "job" / "manifest.json"
    assert stored.read_bytes() == b"{}"


def test_secrets_reach_rclone_only_through_its_environment_obscured(
    rclone_sftp: RcloneRemote,
) -> None:
    options, secret_options = rclone_sftp.settings()
    destination = RcloneDestination("sftp", options, secret_options, "env-check")
    writer = destination.open_writer("job/backup.tar", {})
    try:
        proc = Path(f"/proc/{writer.process.pid}")
        command_line = (proc / "cmdline").read_bytes()
        environment = dict(
            item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if item
        )
    finally:
        writer.abort()
    password = rclone_sftp.password.encode()
    assert password not in command_line
    assert environment[b"RCLONE_CONFIG_MACKUPER_TYPE"] == b"sftp"
    assert environment[b"RCLONE_CONFIG"] == b""  # no config file is read or written
    obscured = environment[b"RCLONE_CONFIG_MACKUPER_PASS"]
    assert obscured and password not in obscured  # `rclone obscure`d, as the backend reads it
    assert not any(value == password for value in environment.values())


def test_a_wrong_password_fails_plainly_and_never_shows_the_secret(
    rclone_webdav: RcloneRemote,
) -> None:
    options, _ = rclone_webdav.settings()
    wrong = "not-the-password-4711"
    destination = RcloneDestination("webdav", options, {"pass": wrong}, "wrong")
    with pytest.raises(DestinationError) as raised:
        destination.check_access()
    assert wrong not in str(raised.value)
    assert "401" in str(raised.value) or "nauthorized" in str(raised.value)


def test_a_remote_that_does_not_answer_is_unreachable() -> None:
    port = free_port()
    destination = RcloneDestination(
        "webdav", {"url": f"http://127.0.0.1:{port}", "vendor": "other"}, {}, "gone"
    )
    with pytest.raises(DestinationUnreachable, match="connection refused"):
        destination.stat("job/backup.tar")


def test_settings_refuse_unknown_backends_options_and_exposed_secrets() -> None:
    with pytest.raises(ValueError, match="no backend named 'nosuchcloud'"):
        RcloneSettings.model_validate({"remote_type": "nosuchcloud"})
    with pytest.raises(ValueError, match="Line 2 is not 'name = value'"):
        RcloneSettings.model_validate({"remote_type": "webdav", "options": "url = x\nbroken"})
    unknown = RcloneSettings.model_validate(
        {"remote_type": "webdav", "options": "url = http://nas\nbucket = x"}
    )
    assert unknown.problems() == {
        "options": "The webdav backend has no option 'bucket' (rclone help backend webdav"
        " lists them)."
    }
    exposed = RcloneSettings.model_validate(
        {"remote_type": "webdav", "options": {"url": "http://nas", "pass": "hunter2"}}
    )
    assert exposed.problems() == {"options": "'pass' is a secret: put it in the secret options."}
