"""Channels and per-job alert settings through the API: encrypted, masked, testable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mackuper.models import Job, NotificationChannel
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.notify_helpers import (  # noqa: F401 - fixtures
    HttpReceiver,
    receiver_fixture,
)
from tests.servers.ports import LOOPBACK, free_port

pytestmark = pytest.mark.integration

TOKEN = "T0KEN-abcdef-123456"


def test_channel_url_is_encrypted_masked_kept_on_edit_and_tested(
    api: ApiClient, runtime: Runtime, receiver: HttpReceiver
) -> None:
    url = f"json://{receiver.url}/hook/{TOKEN}"
    created = api.call(
        "POST",
        "/api/notifications/channels",
        {"name": "ops", "url": url, "events": {"success": True}},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    channel = created.get_json()["channel"]
    assert channel["service"] == "JSON"
    assert channel["url"] == "set"
    assert channel["events"] == {
        "start": False,
        "success": True,
        "warning": True,
        "failure": True,
        "worker": True,
    }
    listing = api.call("GET", "/api/notifications/channels")
    assert TOKEN not in listing.get_data(as_text=True)
    with runtime.sessions() as session:
        row = session.scalars(select(NotificationChannel)).one()
        assert TOKEN not in row.url_encrypted
        assert runtime.secrets.decrypt(row.url_encrypted) == {"url": url}

    renamed = api.call(
        "PUT", f"/api/notifications/channels/{channel['id']}", {"name": "ops team", "url": ""}
    )
    assert renamed.status_code == 200
    tested = api.call("POST", f"/api/notifications/channels/{channel['id']}/test")
    assert tested.status_code == 200, tested.get_data(as_text=True)
    (message,) = receiver.wait_for(1)
    assert message.path == f"/hook/{TOKEN}"
    assert message.json()["title"] == "Mackuper: test message"

    assert api.call("DELETE", f"/api/notifications/channels/{channel['id']}").status_code == 200
    assert api.call("GET", "/api/notifications/channels").get_json()["channels"] == []


def test_bad_or_unreachable_channel_urls_get_one_clear_sentence(api: ApiClient) -> None:
    invalid = api.call(
        "POST", "/api/notifications/channels", {"name": "x", "url": "notaservice://abc"}
    )
    assert invalid.status_code == 422
    assert invalid.get_json()["fields"]["url"].startswith("Apprise does not recognise this URL")
    down = api.call(
        "POST", "/api/notifications/test", {"url": f"json://{LOOPBACK}:{free_port()}/{TOKEN}"}
    )
    assert down.status_code == 422
    error = down.get_json()["error"]
    assert error.startswith("The test message could not be sent: A Connection error occurred")
    assert TOKEN not in error


def _job_payload(destination_id: int, source: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "Docs",
        "source_kind": "local",
        "source": {"paths": [str(source)], "excludes": []},
        "archive_format": "tar.gz",
        "destination_ids": [destination_id],
        **extra,
    }


def test_job_alert_urls_and_pings_are_stored_encrypted_and_shown_as_set(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    destination = api.call(
        "POST", "/api/destinations", {"name": "here", "kind": "local", "path": str(tmp_path / "o")}
    ).get_json()["destination"]
    notifications = {
        "events": {"success": True, "failure": True},
        "urls": f"json://{LOOPBACK}:9/{TOKEN}\n",
        "ping_start": f"https://hc-ping.example/{TOKEN}/start",
        "ping_fail": f"https://hc-ping.example/{TOKEN}/fail",
    }
    hooks = {"pre": {"command": "pg_dump db > /tmp/db.sql", "timeout": 120}}
    response = api.call(
        "POST",
        "/api/jobs",
        _job_payload(destination["id"], source, notifications=notifications, hooks=hooks),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert TOKEN not in response.get_data(as_text=True)
    job = response.get_json()["job"]
    assert job["notifications"]["urls"] == 1
    assert job["notifications"]["pings"] == {"start": "set", "success": "not set", "fail": "set"}
    assert job["notifications"]["events"]["success"] is True
    assert job["hooks"]["pre"] == {
        "command": "pg_dump db > /tmp/db.sql",
        "timeout": 120,
        "on_failure": "abort",
    }

    kept = api.call("PUT", f"/api/jobs/{job['id']}", _job_payload(destination["id"], source))
    assert kept.get_json()["job"]["notifications"]["urls"] == 1
    cleared = api.call(
        "PUT",
        f"/api/jobs/{job['id']}",
        _job_payload(destination["id"], source, notifications={"clear": ["urls", "ping_fail"]}),
    ).get_json()["job"]
    assert cleared["notifications"]["urls"] == 0
    assert cleared["notifications"]["pings"]["fail"] == "not set"
    with runtime.sessions() as session:
        row = session.get_one(Job, job["id"])
        assert TOKEN not in (row.notify_secrets_encrypted or "")
        assert runtime.secrets.decrypt(row.notify_secrets_encrypted) == {
            "ping_start": f"https://hc-ping.example/{TOKEN}/start"
        }


def test_job_form_rejects_bad_alert_urls_and_hook_settings(api: ApiClient, tmp_path: Path) -> None:
    destination = api.call(
        "POST", "/api/destinations", {"name": "here", "kind": "local", "path": str(tmp_path / "o")}
    ).get_json()["destination"]
    response = api.call(
        "POST",
        "/api/jobs",
        _job_payload(
            destination["id"],
            tmp_path,
            notifications={"urls": "json://ok.example/x\nbogus://y", "ping_fail": "ftp://x/y"},
            hooks={"post": {"command": "true", "timeout": 0, "on_failure": "explode"}},
        ),
    )
    assert response.status_code == 422
    fields = response.get_json()["fields"]
    assert fields["notifications.urls"].startswith("Line 2: Apprise does not recognise")
    assert fields["notifications.ping_fail"] == "A ping URL starts with http:// or https://."
    assert fields["hooks.post.timeout"].startswith("Use a whole number of seconds")
    assert fields["hooks.post.on_failure"] == "Choose abort or warn."


def test_jobs_page_edits_a_jobs_alerts_and_commands_on_their_own(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    destination = api.call(
        "POST", "/api/destinations", {"name": "here", "kind": "local", "path": str(tmp_path / "o")}
    ).get_json()["destination"]
    job = api.call("POST", "/api/jobs", _job_payload(destination["id"], tmp_path)).get_json()["job"]
    page = api.client.get("/jobs").get_data(as_text=True)
    assert 'x-data="jobAlerts"' in page and "$dispatch('job-alerts'" in page

    saved = api.call(
        "PUT",
        f"/api/jobs/{job['id']}/alerts",
        {
            "notifications": {"urls": f"json://{LOOPBACK}:9/{TOKEN}", "global_channels": False},
            "hooks": {"post": {"command": "echo done", "timeout": 30, "on_failure": "warn"}},
        },
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert TOKEN not in saved.get_data(as_text=True)
    shown = api.call("GET", f"/api/jobs/{job['id']}/alerts").get_json()
    assert shown["notifications"]["urls"] == 1
    assert shown["notifications"]["global_channels"] is False
    assert shown["hooks"] == {"post": {"command": "echo done", "timeout": 30, "on_failure": "warn"}}
    with runtime.sessions() as session:
        row = session.get_one(Job, job["id"])
        assert runtime.secrets.decrypt(row.notify_secrets_encrypted) == {
            "urls": [f"json://{LOOPBACK}:9/{TOKEN}"]
        }
    refused = api.call(
        "PUT", f"/api/jobs/{job['id']}/alerts", {"hooks": {"pre": {"command": "x", "timeout": -1}}}
    )
    assert refused.status_code == 422
    assert "hooks.pre.timeout" in refused.get_json()["fields"]
