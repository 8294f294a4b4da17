"""Scheduled verification: one tick queues one verify run per job and destination, for the
newest backup; a tick is handled once however often workers look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mackuper import installation
from mackuper.core import schedule
from mackuper.models import Job
from mackuper.runs import enqueue
from mackuper.runs.enqueue import enqueue_due_verifications
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import (
    backed_up,
    finished_run,
    local_destination,
    ok,
)
from tests.trees import make_small_tree

pytestmark = pytest.mark.integration


def test_scheduled_tick_verifies_each_jobs_newest_backup_once(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source = make_small_tree(tmp_path / "source")
    destination = local_destination(api, tmp_path / "storage")
    backup = backed_up(api, runtime, source, destination["id"], "tar")
    bad = api.call("PUT", "/api/verify/schedule", {"cron": "not cron"})
    assert bad.status_code == 422 and "cron" in bad.get_json()["fields"]
    saved = ok(api, "PUT", "/api/verify/schedule", {"cron": "0 3 * * *", "deep": True})
    assert saved["schedule"] == {"cron": "0 3 * * *", "deep": True}

    with runtime.sessions() as session:
        zone = installation.timezone(session)
    tick = schedule.next_fire_times("0 3 * * *", zone, datetime.now(UTC) + timedelta(hours=3), 1)[0]
    after_tick = tick + timedelta(seconds=30)
    assert enqueue_due_verifications(runtime, after_tick - timedelta(hours=2)) == 0
    assert enqueue_due_verifications(runtime, after_tick) == 1
    assert enqueue_due_verifications(runtime, after_tick) == 0
    assert enqueue_due_verifications(runtime, after_tick + timedelta(minutes=5)) == 0

    (queued,) = ok(api, "GET", "/api/runs?status=queued")["runs"]
    assert (queued["kind"], queued["trigger"]) == ("verify", "schedule")
    run = finished_run(api, runtime, queued)
    assert run["status"] == "success", run["error"]
    (listed,) = ok(api, "GET", f"/api/backups?job_id={backup['job_id']}")["backups"]
    assert listed["verify_status"] == "ok"


def test_queued_verify_does_not_make_the_jobs_scheduled_backup_skip(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source = make_small_tree(tmp_path / "source")
    destination = local_destination(api, tmp_path / "storage")
    backup = backed_up(api, runtime, source, destination["id"], "tar")
    ok(api, "POST", "/api/verify", {"artifact_id": backup["id"]})
    with runtime.sessions() as session:
        job = session.get_one(Job, backup["job_id"])
        now = datetime.now(UTC).replace(microsecond=0)
        enqueue.enqueue_tick(session, job, now, now)
    runs = ok(api, "GET", f"/api/runs?job_id={backup['job_id']}&status=queued")["runs"]
    assert sorted((run["kind"], run["trigger"]) for run in runs) == [
        ("backup", "schedule"),
        ("verify", "manual"),
    ]
