"""/health reports a silent worker; the web process alerts once per outage, then on recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mackuper.models import WorkerHeartbeat
from mackuper.notify.watch import check_worker
from mackuper.runtime import Runtime
from tests.integration.notify_helpers import (  # noqa: F401 - fixtures
    HttpReceiver,
    add_channel,
    receiver_fixture,
)

pytestmark = pytest.mark.integration

THRESHOLD = timedelta(minutes=2)


def _beat(runtime: Runtime, age: timedelta) -> None:
    with runtime.sessions.begin() as session:
        beat = session.get(WorkerHeartbeat, "w1")
        if beat is None:
            beat = WorkerHeartbeat(worker_id="w1", hostname="h", pid=1)
            session.add(beat)
        beat.seen_at = datetime.now(UTC) - age


def test_health_is_ok_with_a_fresh_heartbeat_and_503_with_a_reason_when_stale(
    runtime: Runtime, app: Flask, client: FlaskClient
) -> None:
    app.extensions["mackuper_started_at"] = datetime.now(UTC) - timedelta(minutes=10)
    _beat(runtime, timedelta(seconds=2))
    fresh = client.get("/health")
    assert fresh.status_code == 200
    assert fresh.get_json()["worker"] == "ok"

    _beat(runtime, timedelta(minutes=5))
    stale = client.get("/health")
    assert stale.status_code == 503
    assert stale.get_json()["status"] == "error"
    assert stale.get_json()["database"] == "ok"
    assert stale.get_json()["reason"].startswith("No worker heartbeat for 30")
    assert client.get("/health/live").status_code == 200


def test_health_allows_a_just_started_process_time_for_its_worker(
    app: Flask, client: FlaskClient
) -> None:
    starting = client.get("/health")
    assert starting.status_code == 200
    assert starting.get_json()["worker"] == "starting"

    app.extensions["mackuper_started_at"] = datetime.now(UTC) - timedelta(minutes=5)
    missing = client.get("/health")
    assert missing.status_code == 503
    assert missing.get_json()["reason"] == "No worker is running."


def test_a_silent_worker_is_alerted_once_and_its_return_once(
    runtime: Runtime, receiver: HttpReceiver
) -> None:
    add_channel(runtime, "ops", f"json://{receiver.url}/hook")
    add_channel(runtime, "quiet", f"json://{receiver.url}/quiet", {"worker": False})
    _beat(runtime, timedelta(seconds=5))
    now = datetime.now(UTC)
    assert check_worker(runtime, now, THRESHOLD) is None

    _beat(runtime, timedelta(minutes=3))
    assert check_worker(runtime, datetime.now(UTC), THRESHOLD) == "down"
    assert check_worker(runtime, datetime.now(UTC), THRESHOLD) is None
    (down,) = receiver.wait_for(1)
    alert = down.json()
    assert alert["type"] == "failure"
    assert alert["title"] == "Mackuper: no worker is running; backups are not being made"
    assert "No worker has sent a heartbeat for 3 min" in alert["message"]

    _beat(runtime, timedelta(seconds=1))
    assert check_worker(runtime, datetime.now(UTC), THRESHOLD) == "up"
    assert check_worker(runtime, datetime.now(UTC), THRESHOLD) is None
    requests = receiver.wait_for(2)
    assert [request.path for request in requests] == ["/hook", "/hook"]
    assert requests[1].json()["title"] == "Mackuper: a worker is running again"
