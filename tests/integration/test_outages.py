"""Short outages do not fail a backup; long ones fail it cleanly (issue 24, item 8).

Mackuper talks to a real S3 server (moto) and a real sshd through a FaultProxy that
cuts the traffic in the middle of a run: new connections are refused and open ones
reset. A cut of 3 s and one of 30 s are ridden out by retrying with backoff, and
the archive, opened with GNU tar, holds exactly the source's files. A cut that
outlasts the retry budget fails the run with an error naming the destination, and
leaves no object and, once the worker's recovery can reach the store, no multipart
upload.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from mackuper.destinations.s3 import S3Destination
from mackuper.models import Artifact, Destination, Job, Run, RunStatus
from mackuper.pipeline.errors import PipelineError
from mackuper.pipeline.run import BackupPlan, BackupResult, run_backup
from mackuper.runs import enqueue
from mackuper.runtime import Runtime
from mackuper.sources.local import LocalSource
from mackuper.sources.ssh import SSHSource
from mackuper.ssh import SSHError
from mackuper.worker.service import Worker
from tests.integration.engine_support import RecordingHooks, describe_tree, extract
from tests.integration.notify_helpers import run_log
from tests.integration.ssh_support import ssh_backup, target_for
from tests.servers.faults import FaultProxy, endpoint_address, fault_proxy
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name
from tests.servers.sshd import SSHServer, chown_tree
from tests.servers.throttle import throttled

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB


def _source_tree(root: Path, sizes: list[int] | None = None) -> Path:
    """40 MiB in files of several sizes: eight parts, so the cut meets parts in flight."""
    root.mkdir(parents=True)
    sizes = sizes or [12 * MIB, 9 * MIB, 7 * MIB, 5 * MIB, 4 * MIB, 3 * MIB]
    for index, size in enumerate(sizes):
        (root / f"file-{index}.bin").write_bytes(os.urandom(size))
    (root / "small").mkdir()
    for index in range(20):
        (root / "small" / f"note-{index}.txt").write_text(f"note {index}\n" * 50)
    return root


@pytest.fixture
def bucket(moto_s3: S3Server) -> Iterator[str]:
    name = moto_s3.make_bucket(unique_bucket_name("outage"))
    yield name
    remove_bucket(moto_s3, name)


@pytest.fixture
def proxy(moto_s3: S3Server) -> Iterator[FaultProxy]:
    with fault_proxy(*endpoint_address(moto_s3.endpoint_url)) as running:
        yield running


def _through(
    proxy: FaultProxy, server: S3Server, bucket: str, retry: float, read_timeout: float = 10
) -> S3Destination:
    return S3Destination(
        bucket=bucket,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        region=server.region,
        endpoint_url=proxy.url,
        path_style=True,
        part_size=PART,
        parts_in_flight=2,
        connect_timeout=2,
        read_timeout=read_timeout,
        retry_seconds=retry,
    )


def _backup_with_cut(
    source: Path,
    destination: S3Destination,
    proxy: FaultProxy,
    seconds: float | None,
    existing: str = "reset",
) -> tuple[BackupResult | PipelineError, RecordingHooks, float]:
    """Back up `source`; cut the traffic once 15 MiB were read. Returns what the run
    gave (its result or its error), its hooks, and its duration."""

    def cut_once(bytes_read: int) -> None:
        if bytes_read > 15 * MIB and not proxy.cuts:
            proxy.cut(seconds, existing)

    hooks = RecordingHooks(stop_when=cut_once)
    plan = BackupPlan(
        job_id=1,
        job_slug="outage",
        job_name="Outage",
        run_id=1,
        archive_format="tar",
        compression_level=None,
        source=LocalSource([str(source)]),
        destinations={1: destination},
        started_at=datetime.now(UTC),
    )
    started = time.monotonic()
    try:
        outcome: BackupResult | PipelineError = run_backup(plan, hooks)
    except PipelineError as error:
        outcome = error
    return outcome, hooks, time.monotonic() - started


def _uploads(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
    return [upload["Key"] for upload in listed.get("Uploads", [])]


def _objects(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("seconds", "existing"),
    [(3, "reset"), (5, "stall"), (30, "reset")],
    ids=["3s-reset", "5s-stall", "30s-reset"],
)
def test_a_backup_rides_out_an_s3_outage_and_stores_the_source_exactly(
    tmp_path: Path,
    moto_s3: S3Server,
    bucket: str,
    proxy: FaultProxy,
    seconds: int,
    existing: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Open connections are reset, or stalled past the client's read timeout (3 s)."""
    source = _source_tree(tmp_path / "source")
    destination = _through(proxy, moto_s3, bucket, retry=120, read_timeout=3)

    result, hooks, took = _backup_with_cut(source, destination, proxy, seconds, existing)

    assert isinstance(result, BackupResult), f"{result}\n{hooks.messages()}"
    assert result.failed_destinations == {} and result.problems == []
    start, end = proxy.cuts[0]
    assert end is not None and end - start >= seconds - 0.1  # the outage really lasted
    assert took > seconds
    assert "retrying" in caplog.text  # requests did fail during the cut
    keys = _objects(moto_s3, bucket)
    archive_key = next(key for key in keys if key.endswith(".tar"))
    assert sorted(keys) == sorted([archive_key, archive_key + ".manifest.json"])
    archive = tmp_path / "archive.tar"
    body = moto_s3.client().get_object(Bucket=bucket, Key=archive_key)["Body"]  # type: ignore[attr-defined]
    archive.write_bytes(body.read())
    extract(archive, "tar", tmp_path / "out")
    assert describe_tree(tmp_path / "out" / str(source).lstrip("/")) == describe_tree(source)
    assert _uploads(moto_s3, bucket) == []
    print(f"cut {seconds} s ({existing}): backup took {took:.1f} s")  # noqa: T201


@pytest.mark.timeout(120)
def test_an_s3_outage_past_the_retry_budget_fails_the_run_cleanly_naming_the_destination(
    tmp_path: Path,
    moto_s3: S3Server,
    bucket: str,
    runtime: Runtime,
) -> None:
    """A worker runs the backup; S3 goes away for good in the middle. The run fails
    once the budget is spent, naming the destination; nothing is published, and the
    multipart upload it could not abort is aborted by the worker's recovery once
    the store answers again."""
    runtime.settings = replace(runtime.settings, retry_seconds=6)  # MACKUPER_RETRY_SECONDS=6
    source = _source_tree(tmp_path / "source")
    with (
        throttled(moto_s3.endpoint_url, 8 * MIB) as slow,
        fault_proxy(*endpoint_address(slow.url)) as proxy,
    ):
        run_id = _queue_backup(runtime, source, moto_s3, proxy.url, bucket)
        worker = Worker(runtime, worker_id="outage-test")
        cutter = threading.Thread(target=_cut_when_reading, args=(runtime, run_id, proxy))
        cutter.start()
        started = time.monotonic()
        with runtime.sessions() as session:
            assert worker.claim(session, run_id)
        outcome = worker.run(run_id)
        took = time.monotonic() - started
        cutter.join()

        assert outcome.status is RunStatus.FAILED
        error = outcome.error or ""
        assert f"s3://{bucket}/ at {proxy.url} unreachable" in error, error
        assert "gave up after" in error
        assert moto_s3.secret_key not in error + "\n".join(run_log(runtime, run_id))
        assert 6 <= took < 60
        assert _objects(moto_s3, bucket) == []  # nothing half-done is visible
        # The abort could not reach the store either: the upload id is kept, so
        # recovery can abort it; while the store is away, recovery keeps it.
        [artifact] = _artifacts(runtime, run_id)
        assert (artifact.state, bool(artifact.upload_id)) == ("pending", True)
        assert _uploads(moto_s3, bucket) == [artifact.key]
        worker.recover()
        assert _artifacts(runtime, run_id)[0].state == "pending"

        proxy.restore()
        worker.recover()
        worker.pool.shutdown()

    assert _uploads(moto_s3, bucket) == []
    assert _objects(moto_s3, bucket) == []
    assert _artifacts(runtime, run_id)[0].state == "deleted"
    print(f"cut for good: the run failed after {took:.1f} s")  # noqa: T201


def _queue_backup(
    runtime: Runtime, source: Path, moto: S3Server, endpoint_url: str, bucket: str
) -> int:
    with runtime.sessions.begin() as session:
        destination = Destination(
            name="moto behind a proxy",
            kind="s3",
            config={"bucket": bucket, "endpoint_url": endpoint_url, "path_style": True},
            secrets_encrypted=runtime.secrets.encrypt(
                {"access_key_id": moto.access_key, "secret_access_key": moto.secret_key}
            ),
        )
        job = Job(
            name="Outage",
            slug="outage",
            source_kind="local",
            source_config={"paths": [str(source)], "excludes": []},
            archive_format="tar",
            destinations=[destination],
        )
        session.add(job)
        session.flush()
        return enqueue.run_now(session, job)[0].id


def _cut_when_reading(runtime: Runtime, run_id: int, proxy: FaultProxy) -> None:
    """Cut the traffic for good once the run has reported reading its source."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with runtime.sessions() as session:
            if session.get_one(Run, run_id).bytes_read > 0:
                proxy.cut()
                return
        time.sleep(0.05)


def _artifacts(runtime: Runtime, run_id: int) -> list[Artifact]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Artifact).where(Artifact.run_id == run_id)))


def test_abort_upload_says_when_the_store_cannot_be_reached(
    moto_s3: S3Server, bucket: str, proxy: FaultProxy
) -> None:
    """Recovery must not mark an upload aborted when the abort never arrived."""
    destination = _through(proxy, moto_s3, bucket, retry=0)
    upload = moto_s3.client().create_multipart_upload(Bucket=bucket, Key="job/x.tar")  # type: ignore[attr-defined]
    proxy.cut()
    with pytest.raises(Exception, match="unreachable"):
        destination.abort_upload("job/x.tar", upload["UploadId"])
    proxy.restore()
    destination.abort_upload("job/x.tar", upload["UploadId"])
    assert _uploads(moto_s3, bucket) == []
    with pytest.raises(ClientError):
        moto_s3.client().list_parts(Bucket=bucket, Key="job/x.tar", UploadId=upload["UploadId"])  # type: ignore[attr-defined]


def _remote_tree(server: SSHServer) -> Path:
    """24 MiB in files of several sizes, and small files, that the key user owns."""
    root = Path(tempfile.mkdtemp(prefix="outage-", dir=server.work_dir / "trees"))
    root.chmod(0o755)
    tree = root / "tree"
    _source_tree(tree, [8 * MIB, 6 * MIB, 4 * MIB, 3 * MIB, 2 * MIB, MIB])
    chown_tree(root, server.users["key"].username)
    return tree


def _ssh_backup_with_cut(
    tree: Path, output: Path, proxy: FaultProxy, seconds: float | None, mode: str, **target: Any
) -> tuple[BackupResult | SSHError, RecordingHooks, float]:
    def cut_once(bytes_read: int) -> None:
        if bytes_read > 6 * MIB and not proxy.cuts:
            proxy.cut(seconds)

    hooks = RecordingHooks(stop_when=cut_once)
    started = time.monotonic()
    source = SSHSource(target_for(**target), [str(tree)], transfer=mode.split("-")[0])
    if mode == "tar-incremental":
        source.snapshot = b""  # a chain's full by the remote GNU tar (core/snar.py)
    try:
        result: BackupResult | SSHError = ssh_backup(source, output, hooks)[0]
        if mode == "tar-incremental":
            assert source.new_snapshot is not None, hooks.messages()
    except SSHError as error:
        result = error
    return result, hooks, time.monotonic() - started


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("seconds", "mode"),
    # The 30 s cut once, in the default transfer mode: the backoff is the same code.
    # tar-incremental: the remote tar started again gets its snapshot file again.
    [(3, "tar"), (3, "sftp"), (30, "tar"), (3, "tar-incremental")],
    ids=["3s-tar", "3s-sftp", "30s-tar", "3s-tar-incremental"],
)
def test_an_ssh_source_rides_out_an_outage_and_the_archive_is_the_source(
    tmp_path: Path, sshd: SSHServer, mode: str, seconds: int
) -> None:
    tree = _remote_tree(sshd)
    with fault_proxy(sshd.host, sshd.port) as proxy:
        result, hooks, took = _ssh_backup_with_cut(
            tree,
            tmp_path / "dest",
            proxy,
            seconds,
            mode,
            server=sshd,
            role="key",
            port=proxy.port,
            retry_seconds=120,
        )

    assert isinstance(result, BackupResult), f"{result}\n{hooks.messages()}"
    assert result.problems == [], hooks.messages()
    assert proxy.cuts and proxy.connections >= 2  # cut, and connected again
    assert took > seconds
    [archive] = list((tmp_path / "dest").rglob("*.tar"))
    extract(archive, "tar", tmp_path / "out")
    assert describe_tree(tmp_path / "out" / str(tree).lstrip("/")) == describe_tree(tree)
    print(f"ssh {mode}, cut {seconds} s: backup took {took:.1f} s")  # noqa: T201


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["tar", "sftp"])
def test_an_ssh_outage_past_the_retry_budget_fails_cleanly(
    tmp_path: Path, sshd: SSHServer, mode: str
) -> None:
    tree = _remote_tree(sshd)
    with fault_proxy(sshd.host, sshd.port) as proxy:
        error, hooks, took = _ssh_backup_with_cut(
            tree,
            tmp_path / "dest",
            proxy,
            None,
            mode,
            server=sshd,
            role="key",
            port=proxy.port,
            retry_seconds=4,
        )

    assert isinstance(error, SSHError), error
    assert f"{sshd.host}:{proxy.port} was lost" in str(error)
    assert "could not be made again within 4 s" in str(error)
    assert 4 <= took < 60
    assert [path.name for path in (tmp_path / "dest").rglob("*") if path.is_file()] == []
