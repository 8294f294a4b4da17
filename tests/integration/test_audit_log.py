"""The audit log: every action of the issue's list leaves one entry naming who, when,
from where and on what; secrets typed into any form reach neither the entries nor the
log file; the log is exported as JSON lines, filtered, and kept by its retention."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from mackuper.logs import configure_logging
from mackuper.models import AuditEvent
from mackuper.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD, ApiClient
from tests.integration.restore_support import backed_up, finished_run, local_destination, ok

pytestmark = pytest.mark.integration

SECRETS = {
    "s3": "S3secretPLANTED-0001",
    "s3_new": "S3secretPLANTED-0002",
    "passphrase": "age passphrase PLANTED-0003",
    "passphrase_new": "age passphrase PLANTED-0004",
    "ping": "https://hc.example/ping/PLANTED-0005",
    "channel": "json://127.0.0.1:9/PLANTED-0006",
    "user_password": "User-Pass-PLANTED-0007",
    "reset_password": "Reset-Pass-PLANTED-0008",
    "admin_password": "Admin-Pass-PLANTED-0009",
    "wrong_password": "Wrong-Pass-PLANTED-0010",
}


@pytest.fixture
def log_file(runtime: Runtime) -> Iterator[Path]:
    """The server's log file, set up as `mackuper serve` sets it up."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging(runtime.settings, "web")
    yield runtime.settings.data_dir / "logs" / "mackuper.log"
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def _events(api: ApiClient) -> list[dict[str, Any]]:
    response = api.call("GET", "/api/audit/export")
    assert response.status_code == 200
    assert response.mimetype == "application/jsonl"
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


def test_every_action_leaves_one_entry_and_no_entry_holds_a_secret(
    log_file: Path, app: Flask, api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "report.txt").write_text("quarterly numbers\n")
    stranger = ApiClient(app.test_client())
    stranger.refresh_csrf("/login")
    wrong = {"username": "admin", "password": SECRETS["wrong_password"]}
    assert stranger.call("POST", "/api/login", wrong).status_code == 401
    again = ApiClient(app.test_client())
    again.refresh_csrf("/login")
    ok(again, "POST", "/api/login", {"username": "admin", "password": ADMIN_PASSWORD})

    s3 = {
        "name": "Offsite",
        "kind": "s3",
        "bucket": "audit-bucket",
        "endpoint_url": "http://127.0.0.1:9",
        "access_key_id": "AKIAAUDIT",
        "secret_access_key": SECRETS["s3"],
        "test": False,
    }
    offsite = ok(api, "POST", "/api/destinations", s3)["destination"]
    ok(
        api,
        "PUT",
        f"/api/destinations/{offsite['id']}",
        {**s3, "secret_access_key": SECRETS["s3_new"]},
    )
    ok(api, "DELETE", f"/api/destinations/{offsite['id']}")
    disk = local_destination(api, tmp_path / "store")
    job_body = {
        "name": "Reports",
        "source_kind": "local",
        "source": {"paths": [str(source)]},
        "archive_format": "tar",
        "schedule": "",
        "destination_ids": [disk["id"]],
        "encryption": {"mode": "passphrase", "passphrase": SECRETS["passphrase"]},
        "notifications": {"ping_fail": SECRETS["ping"]},
    }
    job = ok(api, "POST", "/api/jobs", job_body)["job"]
    changed = {
        **job_body,
        "encryption": {"mode": "passphrase", "passphrase": SECRETS["passphrase_new"]},
    }
    ok(api, "PUT", f"/api/jobs/{job['id']}", changed)
    ok(api, "POST", f"/api/jobs/{job['id']}/enabled", {"enabled": False})
    queued = ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"]
    ok(api, "POST", f"/api/runs/{queued['id']}/cancel")
    ok(api, "DELETE", f"/api/jobs/{job['id']}", {})
    ok(api, "PUT", "/api/settings/installation", {"max_concurrent_runs": 3})
    channel = ok(
        api, "POST", "/api/notifications/channels", {"name": "Ops", "url": SECRETS["channel"]}
    )
    ok(api, "DELETE", f"/api/notifications/channels/{channel['channel']['id']}")
    body = {"username": "otto", "password": SECRETS["user_password"], "role": "viewer"}
    otto = ok(api, "POST", "/api/users", body)["user"]
    ok(api, "PUT", f"/api/users/{otto['id']}", {"role": "operator"})
    ok(api, "POST", f"/api/users/{otto['id']}/password", {"password": SECRETS["reset_password"]})
    ok(api, "DELETE", f"/api/users/{otto['id']}")
    token = ok(api, "POST", "/api/tokens", {"name": "ci", "role": "viewer"})
    ok(api, "DELETE", f"/api/tokens/{token['id']}")
    backup = backed_up(api, runtime, source, disk["id"], archive_format="tar", name="Docs")
    target = tmp_path / "restored"
    restore = {"artifact_id": backup["id"], "target": {"kind": "local", "path": str(target)}}
    run = finished_run(api, runtime, ok(api, "POST", "/api/restore", restore)["run"])
    assert run["status"] == "success", run["error"]
    assert (target / str(source / "report.txt").lstrip("/")).read_text() == "quarterly numbers\n"
    download = api.call("GET", f"/api/backups/{backup['id']}/download")
    assert download.status_code == 200
    download.close()
    ok(api, "POST", "/api/runs/cleanup", {"days": 30})
    ok(again, "POST", "/api/logout")
    password = {"current_password": ADMIN_PASSWORD, "new_password": SECRETS["admin_password"]}
    ok(api, "POST", "/api/account/password", password)

    events = _events(api)
    counts = Counter(event["action"] for event in events)
    for action in (
        "login failed",
        "login",
        "logout",
        "password changed",
        "destination changed",
        "destination deleted",
        "job changed",
        "job schedule switched",
        "job deleted",
        "settings changed",
        "alert channel created",
        "alert channel deleted",
        "user created",
        "user changed",
        "password reset",
        "user deleted",
        "token created",
        "token revoked",
        "restore started",
        "backup downloaded",
        "history deleted",
        "run cancelled",
    ):
        assert counts[action] == 1, (action, counts)
    assert counts["destination created"] == 2  # Offsite, then the local disk
    assert counts["job created"] == 2  # Reports, then Docs for the backup
    assert counts["backup started by hand"] == 2
    for event in events:
        assert event["at"] and event["address"] == "127.0.0.1", event
        assert event["object"], event
        assert event["actor"] == "admin", event
    changed_job = next(event for event in events if event["action"] == "job changed")
    assert changed_job["details"]["encryption"]["passphrase"] == "(set)"
    assert changed_job["details"]["name"] == "Reports"
    role_change = next(event for event in events if event["action"] == "user changed")
    assert (role_change["object"], role_change["details"]["role"]) == (
        f"user {otto['id']}",
        "operator",
    )
    failed = next(event for event in events if event["action"] == "login failed")
    assert failed["details"] == {"reason": "wrong password"}

    logging.shutdown()
    written = log_file.read_text()
    exported = api.call("GET", "/api/audit/export").get_data(as_text=True)
    listed = api.call("GET", "/api/audit?limit=1000").get_data(as_text=True)
    for name, secret in SECRETS.items():
        assert secret not in exported, name
        assert secret not in listed, name
        assert secret not in written, name
    assert str(token["token"]) not in exported + written
    for event in events:
        line = f"audit {event['action']} by {event['actor']} from 127.0.0.1 on {event['object']} "
        assert line in written, line


def test_the_log_is_filtered_exported_and_trimmed_by_its_retention(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    with runtime.sessions.begin() as session:
        session.add(
            AuditEvent(
                at=datetime.now(UTC) - timedelta(days=40),
                actor="admin",
                address="10.0.0.1",
                action="login",
                object="user admin",
            )
        )
    ok(api, "POST", "/api/tokens", {"name": "one"})
    assert {event["address"] for event in _events(api)} >= {"10.0.0.1"}

    only = ok(api, "GET", "/api/audit?action=token+created")["events"]
    assert [event["object"] for event in only] == ["token 1 one"]
    assert ok(api, "GET", "/api/audit/retention") == {"keep_days": 365}
    ok(api, "PUT", "/api/audit/retention", {"keep_days": 30})
    ok(api, "POST", "/api/tokens", {"name": "two"})

    events = _events(api)
    assert "10.0.0.1" not in {event["address"] for event in events}
    assert [event["action"] for event in events][-2:] == [
        "audit retention changed",
        "token created",
    ]
    bad = api.call("PUT", "/api/audit/retention", {"keep_days": "soon"})
    assert bad.status_code == 422
    assert ok(api, "GET", "/api/audit/retention") == {"keep_days": 30}
    # Append-only: nothing in the API changes or deletes an entry.
    writes = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/audit")
        for method in (rule.methods or set()) - {"GET", "HEAD", "OPTIONS"}
    }
    assert writes == {("/api/audit/retention", "PUT")}
