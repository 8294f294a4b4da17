"""Roles at work on a real backup: operators restore only into the folders an
administrator allowed them, viewers download only when allowed, pre/post commands
are the administrators' alone, and no viewer answer holds a secret."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import backed_up, finished_run, local_destination, ok

pytestmark = pytest.mark.integration

PASSWORD = "Another-Horse-7"


def _user(app: Flask, admin: ApiClient, username: str, role: str, **extra: Any) -> ApiClient:
    body = {"username": username, "password": PASSWORD, "role": role, **extra}
    ok(admin, "POST", "/api/users", body)
    client = ApiClient(app.test_client())
    client.refresh_csrf("/login")
    ok(client, "POST", "/api/login", {"username": username, "password": PASSWORD})
    client.refresh_csrf("/settings")
    return client


def _tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def backup(api: ApiClient, runtime: Runtime, tmp_path: Path) -> dict[str, Any]:
    source = tmp_path / "source"
    (source / "letters").mkdir(parents=True)
    (source / "letters" / "a.txt").write_text("dear operator\n")
    (source / "photo.bin").write_bytes(bytes(range(256)) * 64)
    destination = local_destination(api, tmp_path / "store")
    return backed_up(api, runtime, source, destination["id"], archive_format="tar")


def test_an_operator_restores_into_an_allowed_folder_and_nowhere_else(
    app: Flask, api: ApiClient, runtime: Runtime, tmp_path: Path, backup: dict[str, Any]
) -> None:
    allowed = tmp_path / "restores"
    allowed.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (allowed / "link-out").symlink_to(elsewhere)
    operator = _user(app, api, "otto", "operator", restore_targets=[str(allowed)])
    runs_before = len(ok(api, "GET", "/api/runs")["runs"])

    for target in (
        {"kind": "local", "path": str(elsewhere)},
        {"kind": "local", "path": f"{allowed}/../elsewhere"},
        {"kind": "local", "path": str(allowed / "link-out" / "inside")},
        {"kind": "local", "path": "", "same_as_source": True},
        {"kind": "ssh", "path": "/tmp", "host": "127.0.0.1", "username": "x"},
    ):
        refused = operator.call(
            "POST", "/api/restore", {"artifact_id": backup["id"], "target": target}
        )
        assert refused.status_code == 403, (target, refused.get_data(as_text=True))
        assert "folders" in refused.get_json()["error"]
    assert len(ok(api, "GET", "/api/runs")["runs"]) == runs_before
    assert list(elsewhere.iterdir()) == []

    target = allowed / "documents"
    body = {"artifact_id": backup["id"], "target": {"kind": "local", "path": str(target)}}
    run = finished_run(api, runtime, ok(operator, "POST", "/api/restore", body)["run"])

    assert run["status"] == "success", run["error"]
    source = tmp_path / "source"
    assert _tree(target / str(source).lstrip("/")) == _tree(source)


def test_a_viewer_downloads_only_when_an_administrator_allowed_it(
    app: Flask, api: ApiClient, tmp_path: Path, backup: dict[str, Any]
) -> None:
    viewer = _user(app, api, "vera", "viewer")
    allowed = _user(app, api, "dana", "viewer", can_download=True)
    url = f"/api/backups/{backup['id']}/download"

    refused = viewer.call("GET", url)
    assert refused.status_code == 403
    assert "may not download" in refused.get_json()["error"]
    response = allowed.call("GET", url)
    assert response.status_code == 200, response.get_data(as_text=True)
    archive = tmp_path / "download.tar"
    archive.write_bytes(response.get_data())
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(extracted)], check=True)
    source = tmp_path / "source"
    assert _tree(extracted / str(source).lstrip("/")) == _tree(source)


def test_only_an_administrator_changes_pre_and_post_commands(
    app: Flask, api: ApiClient, tmp_path: Path, backup: dict[str, Any]
) -> None:
    operator = _user(app, api, "otto", "operator")
    job_id = backup["job_id"]
    hooks = {"pre": {"command": "touch /tmp/owned"}}

    refused = operator.call("PUT", f"/api/jobs/{job_id}/alerts", {"hooks": hooks})
    assert refused.status_code == 403
    assert "administrator" in refused.get_json()["error"]
    job = ok(operator, "GET", f"/api/jobs/{job_id}")["job"]
    body = {
        "name": "Renamed by the operator",
        "source_kind": "local",
        "source": job["source"],
        "archive_format": job["archive_format"],
        "schedule": "",
        "destination_ids": job["destination_ids"],
    }
    created = operator.call("POST", "/api/jobs", {**body, "name": "New", "hooks": hooks})
    assert created.status_code == 403
    ok(api, "PUT", f"/api/jobs/{job_id}/alerts", {"hooks": {"pre": {"command": "true"}}})

    ok(operator, "PUT", f"/api/jobs/{job_id}", body)

    stored = ok(api, "GET", f"/api/jobs/{job_id}/alerts")
    assert stored["hooks"]["pre"]["command"] == "true"
    assert ok(api, "GET", f"/api/jobs/{job_id}")["job"]["name"] == "Renamed by the operator"


def test_a_viewer_never_sees_a_secret(app: Flask, api: ApiClient, tmp_path: Path) -> None:
    secrets = ["S3-SECRET-planted-1", "age-passphrase-planted-2", "https://hc.example/planted-3"]
    destination = ok(
        api,
        "POST",
        "/api/destinations",
        {
            "name": "Offsite",
            "kind": "s3",
            "bucket": "planted-bucket",
            "endpoint_url": "http://127.0.0.1:9",
            "access_key_id": "AKIAPLANTED",
            "secret_access_key": secrets[0],
            "test": False,
        },
    )["destination"]
    ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "docs",
            "source": {"paths": [str(tmp_path)]},
            "schedule": "",
            "destination_ids": [destination["id"]],
            "encryption": {"mode": "passphrase", "passphrase": secrets[1]},
            "notifications": {"ping_fail": secrets[2]},
        },
    )
    viewer = _user(app, api, "vera", "viewer")
    read = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or not rule.rule.startswith("/api/"):
            continue
        url = re.sub(r"<(?:int:)?[^>]+>", "1", rule.rule)
        response = viewer.call("GET", url)
        text = response.get_data(as_text=True)
        response.close()
        read += response.status_code == 200
        assert not any(secret in text for secret in secrets), url
    assert read > 20
