"""PostgreSQL restarted in the middle of a backup: the worker reconnects, and the run
is neither lost nor left "running" (issue 24, item 8).

The cluster is this test's own (the session's shared server must not be restarted
under other tests); the backup goes to moto through a slow link so that it is
still streaming when the database goes away.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from mackuper.config import load_settings
from mackuper.models import (
    Artifact,
    ArtifactState,
    Destination,
    Job,
    Run,
    RunStatus,
    WorkerHeartbeat,
)
from mackuper.runs import enqueue
from mackuper.runtime import Runtime, open_runtime
from mackuper.worker.service import Worker
from tests.integration.engine_support import describe_tree, extract
from tests.integration.notify_helpers import run_log
from tests.servers.postgres import OwnCluster, own_cluster, temporary_database
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name
from tests.servers.throttle import ThrottledProxy, throttled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MIB = 1024 * 1024
T = TypeVar("T")


@pytest.fixture
def cluster() -> Iterator[OwnCluster]:
    with own_cluster() as running:
        yield running


@pytest.fixture
def runtime(cluster: OwnCluster, tmp_path: Path) -> Iterator[Runtime]:
    with temporary_database(cluster.server) as name:
        settings = load_settings(
            {
                "MACKUPER_DATA_DIR": str(tmp_path / "data"),
                "DATABASE_URL": cluster.server.url(name),
                "MACKUPER_WORKER_POLL_SECONDS": "0.2",
            }
        )
        opened = open_runtime(settings)
        yield opened
        opened.engine.dispose()


@pytest.fixture
def slow_s3(moto_s3: S3Server) -> Iterator[tuple[ThrottledProxy, str]]:
    bucket = moto_s3.make_bucket(unique_bucket_name("pg"))
    with throttled(moto_s3.endpoint_url, 6 * MIB) as proxy:
        yield proxy, bucket
    remove_bucket(moto_s3, bucket)


def _eventually(read: Callable[[], T], done: Callable[[T], bool], timeout: float) -> T:
    """Poll `read` until `done`; database errors while it restarts are waited out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
            if done(value):
                return value
        except DBAPIError:
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _queue_backup(
    runtime: Runtime, source: Path, moto: S3Server, proxy_url: str, bucket: str
) -> int:
    with runtime.sessions.begin() as session:
        destination = Destination(
            name="moto",
            kind="s3",
            # One part in flight: reading waits for the slow link, so the run keeps
            # writing its progress to the database while the database is away.
            config={
                "bucket": bucket,
                "endpoint_url": proxy_url,
                "path_style": True,
                "parts_in_flight": 1,
            },
            secrets_encrypted=runtime.secrets.encrypt(
                {"access_key_id": moto.access_key, "secret_access_key": moto.secret_key}
            ),
        )
        job = Job(
            name="Database outage",
            slug="database-outage",
            source_kind="local",
            source_config={"paths": [str(source)], "excludes": []},
            archive_format="tar",
            destinations=[destination],
        )
        session.add(job)
        session.flush()
        return enqueue.run_now(session, job)[0].id


def _heartbeat(runtime: Runtime, worker_id: str) -> datetime | None:
    with runtime.sessions() as session:
        beat = session.get(WorkerHeartbeat, worker_id)
        return beat.seen_at if beat is not None else None


def _run(runtime: Runtime, run_id: int) -> Run:
    with runtime.sessions() as session:
        return session.get_one(Run, run_id)


def test_postgres_restarted_mid_backup_the_run_finishes_and_is_recorded(
    tmp_path: Path,
    cluster: OwnCluster,
    runtime: Runtime,
    moto_s3: S3Server,
    slow_s3: tuple[ThrottledProxy, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy, bucket = slow_s3
    source = tmp_path / "source"
    source.mkdir()
    for index in range(12):  # 48 MiB: still being read for ~5 s after the first MiB
        (source / f"part-{index}.bin").write_bytes(os.urandom(4 * MIB))
    run_id = _queue_backup(runtime, source, moto_s3, proxy.url, bucket)
    worker = Worker(runtime, worker_id="pg-restart-test")
    loop = threading.Thread(target=worker.run_forever, daemon=True)
    loop.start()
    try:
        _eventually(lambda: _run(runtime, run_id), lambda run: run.bytes_read > 0, 60)
        cluster.stop()  # every connection of the worker and the run dies with it
        time.sleep(3)
        cluster.start()
        restarted = datetime.now(UTC)
        run = _eventually(
            lambda: _run(runtime, run_id),
            lambda run: run.status not in {RunStatus.QUEUED, RunStatus.RUNNING},
            120,
        )
        beat = _eventually(
            lambda: _heartbeat(runtime, worker.worker_id),
            lambda seen: seen is not None and seen > restarted,
            30,
        )
    finally:
        worker.stopping.set()
        loop.join(timeout=60)

    log = run_log(runtime, run_id)
    assert run.status is RunStatus.SUCCESS, (run.error, log)
    assert log[-1] == "info: finished: success"
    assert f"run {run_id}: database unavailable, retrying" in caplog.text  # it was hit
    assert beat is not None  # the worker's own loop reconnected too
    with runtime.sessions() as session:
        artifact = session.scalars(select(Artifact).where(Artifact.run_id == run_id)).one()
        running = session.scalars(select(Run).where(Run.status == RunStatus.RUNNING.value)).all()
    assert running == []
    assert artifact.state == ArtifactState.STORED.value
    archive = tmp_path / "archive.tar"
    body = moto_s3.client().get_object(Bucket=bucket, Key=artifact.key)["Body"]  # type: ignore[attr-defined]
    archive.write_bytes(body.read())
    extract(archive, "tar", tmp_path / "out")
    assert describe_tree(tmp_path / "out" / str(source).lstrip("/")) == describe_tree(source)
