"""SIGTERM during a running backup: the run ends `interrupted`, nothing half-uploaded
stays in the bucket, and the process exits well within Docker's 10 s stop timeout.

The S3 server (moto) sits behind a throttled loopback proxy, so the multipart
upload is really in flight when the signal arrives.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from mackuper.models import Artifact, Run, RunLog
from tests.harness import BrowserClient, MackuperProcess, running_mackuper, s3_destination_payload
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name
from tests.servers.throttle import ThrottledProxy, throttled

pytestmark = pytest.mark.e2e

STOP_BUDGET = 10.0
LINK_SPEED = 8 * 1024 * 1024  # bytes/s: ~3 s for the 3 parts in flight to drain
SOURCE_SIZE = 64 * 1024 * 1024  # uncompressed tar: ~8 s of upload at LINK_SPEED


@pytest.fixture
def slow_s3(moto_s3: S3Server) -> Iterator[tuple[S3Server, str, ThrottledProxy]]:
    """A fresh bucket on moto, and a throttled proxy in front of moto."""
    moto_s3.start()
    bucket = moto_s3.make_bucket(unique_bucket_name())
    with throttled(moto_s3.endpoint_url, LINK_SPEED) as proxy:
        yield moto_s3, bucket, proxy
    remove_bucket(moto_s3, bucket)


def make_big_source(root: Path) -> Path:
    root.mkdir(parents=True)
    chunk = os.urandom(1024 * 1024)
    for index in range(4):
        with (root / f"part-{index}.bin").open("wb") as handle:
            for _ in range(SOURCE_SIZE // 4 // len(chunk)):
                handle.write(chunk)
    return root


def start_backup(
    browser: BrowserClient, server: S3Server, bucket: str, proxy: ThrottledProxy, source: Path
) -> int:
    payload = s3_destination_payload(server, bucket)
    payload["endpoint_url"] = proxy.url
    destination = browser.complete_setup(payload)
    job = browser.create_job("Big folder", source, destination["id"], archive_format="tar")
    run_id: int = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
    return run_id


def wait_for_multipart_upload(server: S3Server, bucket: str, timeout: float = 60) -> None:
    client = server.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            return
        time.sleep(0.1)
    raise TimeoutError("the backup never started its multipart upload")


def timed_stop(process: MackuperProcess) -> float:
    """SIGTERM the process (the leader only, as tini does); seconds until it exited."""
    assert process.is_running()
    started = time.monotonic()
    process.stop(timeout=STOP_BUDGET + 5)
    return time.monotonic() - started


def run_row(data_dir: Path, run_id: int) -> dict[str, Any]:
    engine = create_engine(f"sqlite:///{data_dir / 'mackuper.db'}")
    try:
        with Session(engine) as session:
            run = session.get_one(Run, run_id)
            artifacts = session.scalars(select(Artifact).where(Artifact.run_id == run_id)).all()
            logs = session.scalars(select(RunLog.message).where(RunLog.run_id == run_id)).all()
            return {
                "status": run.status,
                "error": run.error,
                "artifacts": [(a.state, a.upload_id) for a in artifacts],
                "log": list(logs),
            }
    finally:
        engine.dispose()


def assert_nothing_left(server: S3Server, bucket: str) -> None:
    client = server.client()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_sigterm_to_serve_during_an_upload_interrupts_the_run_and_exits_within_10_s(
    tmp_path: Path, slow_s3: tuple[S3Server, str, ThrottledProxy]
) -> None:
    server, bucket, proxy = slow_s3
    source = make_big_source(tmp_path / "source")
    data_dir = tmp_path / "data"
    mackuper = MackuperProcess(data_dir).start()
    try:
        browser = BrowserClient(mackuper.url)
        run_id = start_backup(browser, server, bucket, proxy, source)
        wait_for_multipart_upload(server, bucket)
        assert browser.ok("GET", f"/api/runs/{run_id}")["run"]["status"] == "running"
        elapsed = timed_stop(mackuper)
    finally:
        mackuper.kill_all()

    print(f"\nmackuper serve stopped {elapsed:.1f} s after SIGTERM")
    assert elapsed < STOP_BUDGET, f"serve took {elapsed:.1f} s to stop:\n{mackuper.log()}"
    assert mackuper.returncode == 0
    row = run_row(data_dir, run_id)
    assert row["status"] == "interrupted", row
    assert "nothing was published" in (row["error"] or "")
    assert row["artifacts"] and all(state != "stored" for state, _ in row["artifacts"])
    assert_nothing_left(server, bucket)
    assert "Traceback" not in mackuper.log()


def test_sigterm_to_a_lone_worker_interrupts_its_run_while_the_web_keeps_serving(
    tmp_path: Path, slow_s3: tuple[S3Server, str, ThrottledProxy]
) -> None:
    server, bucket, proxy = slow_s3
    source = make_big_source(tmp_path / "source")
    data_dir = tmp_path / "data"
    with running_mackuper(data_dir, command="web") as web:
        worker = MackuperProcess(data_dir, {"PORT": str(web.port)}).start("worker")
        try:
            browser = BrowserClient(web.url)
            run_id = start_backup(browser, server, bucket, proxy, source)
            wait_for_multipart_upload(server, bucket)
            elapsed = timed_stop(worker)
        finally:
            worker.kill_all()
        run = browser.ok("GET", f"/api/runs/{run_id}")["run"]
        health = browser.api("GET", "/health").status_code

    print(f"\nmackuper worker stopped {elapsed:.1f} s after SIGTERM")
    assert elapsed < STOP_BUDGET, f"the worker took {elapsed:.1f} s to stop:\n{worker.log()}"
    assert worker.returncode == 0
    assert run["status"] == "interrupted", run
    assert run["error"] == "the worker stopped; nothing was published"
    assert health == 200
    assert_nothing_left(server, bucket)
