"""Alerts and pings reach a real HTTP receiver with the right content for each outcome."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.models import Run
from mackuper.runtime import Runtime
from mackuper.worker.service import Worker
from tests.integration.notify_helpers import (  # noqa: F401 - fixtures
    HttpReceiver,
    add_channel,
    assert_archive_matches,
    make_job,
    receiver_fixture,
    run_job,
    run_log,
)
from tests.trees import make_small_tree

pytestmark = pytest.mark.integration

BASE_URL = "https://backups.example.org"
EVERY_EVENT = {"start": True, "success": True, "warning": True, "failure": True}


@pytest.fixture
def linked(runtime: Runtime) -> Runtime:
    runtime.settings = dataclasses.replace(runtime.settings, base_url=BASE_URL)
    return runtime


def _pings(receiver: HttpReceiver) -> dict[str, str]:
    return {
        "ping_start": f"http://{receiver.url}/ping/start",
        "ping_success": f"http://{receiver.url}/ping",
        "ping_fail": f"http://{receiver.url}/ping/fail",
    }


def test_success_sends_start_and_success_webhooks_and_pings_in_order(
    linked: Runtime, receiver: HttpReceiver, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    add_channel(linked, "ops", f"json://{receiver.url}/hook/secret-token", EVERY_EVENT)
    job_id = make_job(linked, source, [tmp_path / "out"], secrets=_pings(receiver))

    run = run_job(linked, job_id)

    assert run.status == "success", run.error
    assert_archive_matches(tmp_path / "out", source, tmp_path / "extracted")
    requests = receiver.wait_for(4)
    paths = receiver.paths()
    assert sorted(paths) == ["/hook/secret-token"] * 2 + ["/ping", "/ping/start"]
    assert paths.index("/ping/start") < paths.index("/ping")
    start, end = sorted(receiver.webhooks(), key=lambda hook: hook["type"] != "info")
    assert start["title"] == "Mackuper: Backup 'Home files' started"
    assert end["type"] == "success"
    assert end["title"] == "Mackuper: Backup 'Home files' succeeded"
    assert "Status: success" in end["message"]
    assert f"Size: {run.bytes_written / 1024 / 1024:.1f} MiB" in end["message"]
    assert "Duration: " in end["message"]
    assert f"Details: {BASE_URL}/runs/{run.id}" in end["message"]
    success_ping = next(r for r in requests if r.path == "/ping")
    assert b"succeeded" in success_ping.body
    assert "info: success alert sent to 2 target(s)" in run_log(linked, run.id)


def test_warning_sends_a_warning_webhook_and_the_success_ping(
    linked: Runtime, receiver: HttpReceiver, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    add_channel(linked, "ops", f"json://{receiver.url}/hook")
    job_id = make_job(linked, source, [tmp_path / "out", blocker / "sub"], secrets=_pings(receiver))

    run = run_job(linked, job_id)

    assert run.status == "warning", run.error
    assert_archive_matches(tmp_path / "out", source, tmp_path / "extracted")
    receiver.wait_for(2)
    (hook,) = receiver.webhooks()
    assert hook["type"] == "warning"
    assert hook["title"] == "Mackuper: Backup 'Home files' finished with warnings"
    assert "Error: 1 destination(s) failed" in hook["message"]
    ping = next(r for r in receiver.requests if r.path == "/ping")
    assert b"Status: warning" in ping.body
    assert "/ping/fail" not in receiver.paths()


def test_failure_before_any_data_is_an_alert_that_the_job_could_not_start(
    linked: Runtime, receiver: HttpReceiver, tmp_path: Path
) -> None:
    add_channel(linked, "ops", f"json://{receiver.url}/hook")
    job_id = make_job(linked, tmp_path / "missing", [tmp_path / "out"], secrets=_pings(receiver))

    run = run_job(linked, job_id)

    assert run.status == "failed"
    receiver.wait_for(3)
    (hook,) = receiver.webhooks()
    assert hook["type"] == "failure"
    assert hook["title"] == "Mackuper: Backup 'Home files' could not start"
    assert f"Error: source path {tmp_path / 'missing'} does not exist" in hook["message"]
    fail_ping = next(r for r in receiver.requests if r.path == "/ping/fail")
    assert b"does not exist" in fail_ping.body
    assert "/ping" not in receiver.paths()
    assert not list((tmp_path / "out").rglob("*.tar.gz"))


def test_job_events_choose_which_outcomes_reach_the_jobs_own_urls(
    linked: Runtime, receiver: HttpReceiver, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    job_id = make_job(
        linked,
        source,
        [tmp_path / "out"],
        notifications={"events": {"success": False, "failure": True}, "global_channels": False},
        secrets={"urls": [f"json://{receiver.url}/job-hook"]},
    )
    add_channel(linked, "ops", f"json://{receiver.url}/global", EVERY_EVENT)

    run = run_job(linked, job_id)

    assert run.status == "success"
    assert_archive_matches(tmp_path / "out", source, tmp_path / "extracted")
    assert receiver.wait_for(1, timeout=1) == []


def test_a_run_left_by_a_dead_worker_is_alerted_as_interrupted(
    linked: Runtime, receiver: HttpReceiver, tmp_path: Path
) -> None:
    add_channel(linked, "ops", f"json://{receiver.url}/hook")
    job_id = make_job(linked, tmp_path, [tmp_path / "out"], secrets=_pings(receiver))
    with linked.sessions.begin() as session:
        run = Run(
            job_id=job_id,
            job_name="Home files",
            status="running",
            worker_id="gone:1:abc",
            started_at=datetime.now(UTC),
        )
        session.add(run)
        session.flush()
        run_id = run.id
    worker = Worker(linked, "survivor")
    try:
        worker.recover()
    finally:
        worker.pool.shutdown()

    receiver.wait_for(2)
    (hook,) = receiver.webhooks()
    assert hook["type"] == "failure"
    assert hook["title"] == "Mackuper: Backup 'Home files' failed"
    assert "Status: interrupted" in hook["message"]
    assert f"Details: {BASE_URL}/runs/{run_id}" in hook["message"]
    assert "/ping/fail" in receiver.paths()
