"""An idle worker whose memory grew over its runs starts afresh (issue 23, item 4).

CPython keeps a 1 MiB arena of small objects while any object in it lives, so a
run's thousands of manifest entries leave arenas pinned by the few objects that
outlive the run; `mackuper worker` executes itself again once idle and more than
MACKUPER_WORKER_RECYCLE_MIB above its start. Here the limit is 1 MiB, so the backup
of a few thousand files is enough: the same process (pid) comes back with a new
worker id, its old heartbeat gone, `serve` never saw a child exit, and the next run
works. bench/service.py measures what it saves (docs/benchmarks.md).

What every run loads once (an S3 client's libraries and service data) is loaded
before the worker measures its start, so it is not taken for growth: small backups
to S3 leave the worker as it is.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from mackuper.models import Run, WorkerHeartbeat
from tests.harness import BrowserClient, running_mackuper, s3_destination_payload
from tests.servers.s3 import S3Server

pytestmark = pytest.mark.e2e

AFRESH = "starting afresh (MACKUPER_WORKER_RECYCLE_MIB=1)"


def _source(root: Path) -> dict[str, str]:
    """3,000 small files (the manifest's many objects) and 8 MiB of random bytes."""
    hashes: dict[str, str] = {}
    for index in range(3000):
        path = root / f"d{index % 30}" / f"note-{index}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = f"note {index}\n".encode() * (index % 50 + 1)
        path.write_bytes(data)
        hashes[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    big = os.urandom(8 << 20)
    (root / "big.bin").write_bytes(big)
    hashes["big.bin"] = hashlib.sha256(big).hexdigest()
    return hashes


def _extracted(archive: Path, into: Path, source: Path) -> dict[str, str]:
    into.mkdir()
    subprocess.run(["tar", "-I", "zstd", "-xf", str(archive), "-C", str(into)], check=True)  # noqa: S603, S607
    root = into / str(source).lstrip("/")
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


def _heartbeats(database: Path) -> list[tuple[str, int]]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as session:
            return [(beat.worker_id, beat.pid) for beat in session.scalars(select(WorkerHeartbeat))]
    finally:
        engine.dispose()


def _worker_of(database: Path, run_id: int) -> str | None:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as session:
            run = session.get(Run, run_id)
            return run.worker_id if run is not None else None
    finally:
        engine.dispose()


def test_an_idle_worker_that_grew_starts_afresh_in_the_same_process(tmp_path: Path) -> None:
    source = tmp_path / "source"
    expected = _source(source)
    backups = tmp_path / "backups"
    data = tmp_path / "data"
    env = {"MACKUPER_WORKER_RECYCLE_MIB": "1", "MACKUPER_WORKER_POLL_SECONDS": "0.2"}
    with running_mackuper(data, env) as server:
        pid = server.worker_pid()
        database = data / "mackuper.db"
        browser = BrowserClient(server.url)
        disk = browser.complete_setup({"name": "Disk", "kind": "local", "path": str(backups)})
        job = browser.create_job("Notes", source, disk["id"], archive_format="tar.zst")
        log = data / "logs" / "mackuper.log"

        first = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
        assert browser.wait_run(first)["status"] == "success"
        before = _worker_of(database, first)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            beats = _heartbeats(database)
            if AFRESH in log.read_text() and beats and beats[0][0] != before:
                break
            time.sleep(0.2)
        assert AFRESH in log.read_text()
        assert beats == [(beats[0][0], pid)], beats  # one heartbeat: the old one is gone
        assert beats[0][0] != before
        assert server.worker_pid() == pid  # the same process, executed again
        assert "exited with" not in log.read_text()  # serve saw no child die

        second = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
        run = browser.wait_run(second)
        assert run["status"] == "success", run
        assert _worker_of(database, second) == beats[0][0]

    archives = sorted(backups.rglob("*.tar.zst"))
    assert len(archives) == 2, archives
    for index, archive in enumerate(archives):
        assert _extracted(archive, tmp_path / f"out{index}", source) == expected


def test_a_stop_signal_while_the_worker_starts_afresh_stops_it(tmp_path: Path) -> None:
    # SIGTERM lands while the worker shuts down to execute itself again (the listener
    # and the pool take ~0.5 s to stop): it must stop, not come back as a new worker
    # that never heard the signal (the container's stop then took podman's 10 s).
    source = tmp_path / "source"
    _source(source)
    data = tmp_path / "data"
    env = {"MACKUPER_WORKER_RECYCLE_MIB": "1", "MACKUPER_WORKER_POLL_SECONDS": "0.2"}
    with running_mackuper(data, env) as server:
        browser = BrowserClient(server.url)
        disk = browser.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "b")}
        )
        job = browser.create_job("Notes", source, disk["id"], archive_format="tar.zst")
        log = data / "logs" / "mackuper.log"
        browser.ok("POST", f"/api/jobs/{job['id']}/run")
        deadline = time.monotonic() + 60
        while AFRESH not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert AFRESH in log.read_text()
        started = time.monotonic()
        code = server.stop(timeout=30)
        elapsed = time.monotonic() - started
    assert code == 0 and elapsed < 10, (code, elapsed)


def test_small_backups_to_s3_leave_the_worker_as_it_is(tmp_path: Path, moto_s3: S3Server) -> None:
    # boto3 and an S3 client's service data are ~22 MiB: counted as growth over the
    # default 16 MiB, every backup to S3 made the worker start afresh, and the next one
    # loaded them again (each run came from a new worker id).
    source = tmp_path / "source"
    expected = _source_small(source)
    data = tmp_path / "data"
    bucket = moto_s3.make_bucket()
    env = {"MACKUPER_WORKER_RECYCLE_MIB": "16"}  # the default, whatever it becomes
    with running_mackuper(data, env) as server:
        browser = BrowserClient(server.url)
        storage = browser.complete_setup(s3_destination_payload(moto_s3, bucket))
        job = browser.create_job("Notes", source, storage["id"], archive_format="tar.zst")
    log = data / "logs" / "mackuper.log"
    started_at = len(log.read_text())
    # Started again with the destination in place, as a worker usually starts.
    with running_mackuper(data, env) as server:
        browser = BrowserClient(server.url)
        browser.login()
        ran_on = []
        for _ in range(3):
            run = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
            assert browser.wait_run(run)["status"] == "success"
            ran_on.append(_worker_of(data / "mackuper.db", run))
            # Idle for several polls (0.2 s): time to decide to start afresh, which it
            # does at once when a run ends, before the next one is queued.
            time.sleep(1.5)
        assert "starting afresh" not in log.read_text()[started_at:]
    assert len(set(ran_on)) == 1, ran_on
    client = moto_s3.client()
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]  # type: ignore[attr-defined]
    archives = sorted(key for key in keys if key.endswith(".tar.zst"))
    assert len(archives) == 3, keys
    for index, key in enumerate(archives):
        archive = tmp_path / f"{index}.tar.zst"
        client.download_file(bucket, key, str(archive))
        assert _extracted(archive, tmp_path / f"out{index}", source) == expected


def _source_small(root: Path) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for index in range(40):
        path = root / f"note-{index}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = f"note {index}\n".encode() * (index + 1)
        path.write_bytes(data)
        hashes[path.name] = hashlib.sha256(data).hexdigest()
    return hashes
