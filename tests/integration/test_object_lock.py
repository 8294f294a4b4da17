"""Issue 19, item 1: S3 Object Lock on moto's server, which enforces retention.

What moto enforces (5.2.5, read in moto/s3/models.py): a DeleteObject naming a version
whose retain-until date lies ahead is refused (AccessDenied), in compliance mode always
and in governance mode unless the request carries the bypass header. Its gaps: it reads
its own clock only; PutObjectRetention accepts a shorter date, even a past one, in either
mode (AWS refuses that for compliance, and for governance without the bypass); and it
checks no IAM, so any key may send the bypass header. The test that lets a lock run out
therefore moves the date back at the server with a governance bypass (what a person
holding s3:BypassGovernanceRetention could do), while Mackuper's clock is injected.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from mackuper.destinations import registry
from mackuper.destinations.base import DestinationError, Lock
from mackuper.destinations.s3 import S3Destination
from mackuper.models import Artifact, Destination, Run, RunLog, RunStatus, RunTrigger
from mackuper.runs import enqueue, lifecycle
from mackuper.runs.retention import apply_retention
from mackuper.runtime import Runtime
from mackuper.worker.service import Worker
from tests.conftest import ApiClient
from tests.harness import s3_destination_payload
from tests.integration.write_lock import another_writer
from tests.servers.s3 import S3Server, unique_bucket_name
from tests.trees import blake3_bytes, make_small_tree

pytestmark = pytest.mark.integration


def locked_bucket(server: S3Server, default: dict[str, Any] | None = None) -> str:
    bucket = unique_bucket_name("lock")
    server.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    if default is not None:
        server.client().put_object_lock_configuration(
            Bucket=bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": default},
            },
        )
    return bucket


def lock_destination(api: ApiClient, server: S3Server, bucket: str, mode: str, days: int) -> int:
    payload = {
        **s3_destination_payload(server, bucket, f"Locked {bucket}"),
        "object_lock_mode": mode,
        "lock_days": days,
    }
    response = api.call("POST", "/api/destinations", payload)
    assert response.status_code == 201, response.json
    return int(response.json["destination"]["id"])


def make_job(api: ApiClient, source: Path, destination_id: int, retention: dict[str, int]) -> int:
    response = api.call(
        "POST",
        "/api/jobs",
        {
            "name": f"Documents {destination_id} {sorted(retention)}",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "archive_format": "tar.gz",
            "destination_ids": [destination_id],
            "retention": retention,
            "timezone": "UTC",
        },
    )
    assert response.status_code == 201, response.json
    return int(response.json["job"]["id"])


def back_up(runtime: Runtime, job_id: int, started: datetime) -> Artifact:
    worker = Worker(runtime, f"lock-test-{job_id}")
    with runtime.sessions.begin() as session:
        run = Run(
            job_id=job_id,
            job_name="Documents",
            status=RunStatus.RUNNING.value,
            worker_id=worker.worker_id,
            started_at=started,
        )
        session.add(run)
        session.flush()
        run_id = run.id
    outcome = worker.run(run_id)
    worker.pool.shutdown()
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    with runtime.sessions() as session:
        artifact = session.scalars(select(Artifact).where(Artifact.run_id == run_id)).one()
        session.expunge(artifact)
    return artifact


def lock_at_server(server: S3Server, bucket: str, key: str) -> tuple[str, datetime]:
    head = server.client().head_object(Bucket=bucket, Key=key)
    return head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]


def near(moment: datetime, expected: datetime) -> bool:
    return abs(moment - expected) < timedelta(seconds=1)


def test_archives_and_manifests_are_locked_until_their_tier_promises_and_extended_later(
    tmp_path: Path, runtime: Runtime, api: ApiClient, moto_s3: S3Server
) -> None:
    source = make_small_tree(tmp_path / "source")
    bucket = locked_bucket(moto_s3)
    destination = lock_destination(api, moto_s3, bucket, "GOVERNANCE", 2)
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    by_days = back_up(runtime, make_job(api, source, destination, {"keep_days": 10}), started)
    for key in (by_days.key, by_days.key + ".manifest.json"):
        mode, until = lock_at_server(moto_s3, bucket, key)
        assert mode == "GOVERNANCE"
        assert near(until, started + timedelta(days=10)), until

    gfs_job = make_job(api, source, destination, {"keep_daily": 7, "keep_weekly": 4})
    gfs = back_up(runtime, gfs_job, started)
    for key in (gfs.key, gfs.key + ".manifest.json"):
        # The slots promise nothing while the day runs: the destination's minimum.
        assert near(lock_at_server(moto_s3, bucket, key)[1], started + timedelta(days=2))

    # Nine days on the day and the week are over: the backup holds its weekly slot until
    # four weeks have begun since its week began.
    later = started + timedelta(days=9)
    apply_retention(runtime.sessions, runtime.secrets, gfs_job, later)
    day = started.replace(hour=0, minute=0, second=0)
    expected = day - timedelta(days=day.weekday()) + timedelta(weeks=4)
    for key in (gfs.key, gfs.key + ".manifest.json"):
        mode, until = lock_at_server(moto_s3, bucket, key)
        assert (mode, until) == ("GOVERNANCE", expected)
    with runtime.sessions() as session:
        logs = session.scalars(select(RunLog.message).where(RunLog.run_id == gfs.run_id)).all()
    assert f"lock of {gfs.key} at Locked {bucket} extended to {expected:%Y-%m-%d %H:%M} UTC" in (
        " ".join(logs)
    )


def test_a_locked_version_survives_a_delete_with_the_backup_key(
    tmp_path: Path, runtime: Runtime, api: ApiClient, moto_s3: S3Server
) -> None:
    source = make_small_tree(tmp_path / "source")
    bucket = locked_bucket(moto_s3)
    destination_id = lock_destination(api, moto_s3, bucket, "COMPLIANCE", 1)
    job_id = make_job(api, source, destination_id, {"keep_last": 3})
    artifact = back_up(runtime, job_id, datetime.now(UTC) - timedelta(minutes=5))
    assert lock_at_server(moto_s3, bucket, artifact.key)[0] == "COMPLIANCE"

    with runtime.sessions() as session:
        row = session.get(Destination, destination_id)
        assert row is not None
        target = registry.build(
            row.kind, row.config, runtime.secrets.decrypt(row.secrets_encrypted)
        )
    with pytest.raises(DestinationError, match=r"locked \(compliance mode\) until"):
        target.delete(artifact.key)

    client = moto_s3.client()  # the same key, straight to the server
    version = client.head_object(Bucket=bucket, Key=artifact.key)["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=bucket, Key=artifact.key, VersionId=version)
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(
            Bucket=bucket, Key=artifact.key, VersionId=version, BypassGovernanceRetention=True
        )
    client.delete_object(Bucket=bucket, Key=artifact.key)  # only hides it behind a marker

    kept = client.get_object(Bucket=bucket, Key=artifact.key, VersionId=version)["Body"].read()
    assert blake3_bytes(kept) == artifact.blake3


def test_retention_skips_locked_backups_and_deletes_every_version_once_the_date_passed(
    tmp_path: Path, runtime: Runtime, api: ApiClient, moto_s3: S3Server
) -> None:
    source = make_small_tree(tmp_path / "source")
    bucket = locked_bucket(moto_s3)
    job_id = make_job(
        api, source, lock_destination(api, moto_s3, bucket, "GOVERNANCE", 1), {"keep_last": 1}
    )
    now = datetime.now(UTC)
    old = back_up(runtime, job_id, now - timedelta(hours=3))
    new = back_up(runtime, job_id, now - timedelta(hours=2))  # its retention keeps `old`
    keys = [old.key, old.key + ".manifest.json"]
    client = moto_s3.client()

    def states() -> dict[int, str]:
        with runtime.sessions() as session:
            return {a.run_id: a.state for a in session.scalars(select(Artifact))}

    def versions(key: str) -> list[dict[str, Any]]:
        listed = client.list_object_versions(Bucket=bucket, Prefix=key)
        return [
            item
            for item in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
            if item["Key"] == key
        ]

    assert states() == {old.run_id: "stored", new.run_id: "stored"}
    with runtime.sessions() as session:
        said = session.scalars(select(RunLog.message).where(RunLog.run_id == new.run_id)).all()
    assert any(
        line.startswith(
            f"retention keeps {old.key} at Locked {bucket} for now: it is locked"
            " (governance mode) until"
        )
        for line in said
    ), said
    assert all(len(versions(key)) == 1 for key in keys)
    preview = api.call("GET", f"/api/jobs/{job_id}/retention/preview").json["backups"]
    (shown,) = [item for item in preview if item["run_id"] == old.run_id]
    assert not shown["keep"]
    assert near(
        datetime.fromisoformat(shown["locked_until"]), lock_at_server(moto_s3, bucket, old.key)[1]
    )
    assert [item["locked_until"] for item in preview if item["run_id"] == new.run_id] == [None]

    # Mackuper's clock past the date but the server's not: the server refuses, the
    # backup stays recorded and stored.
    two_days_on = now + timedelta(days=2)
    assert apply_retention(runtime.sessions, runtime.secrets, job_id, two_days_on) == 0
    assert states() == {old.run_id: "stored", new.run_id: "stored"}
    assert all(len(versions(key)) == 1 for key in keys)

    for key in keys:  # the date passes at the server too
        client.put_object_retention(
            Bucket=bucket,
            Key=key,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": now - timedelta(minutes=1)},
            BypassGovernanceRetention=True,
        )
    assert apply_retention(runtime.sessions, runtime.secrets, job_id, two_days_on) == 1
    assert states() == {old.run_id: "deleted", new.run_id: "stored"}
    assert [versions(key) for key in keys] == [[], []]  # removed, not hidden behind a marker
    assert len(versions(new.key)) == 1


def test_a_retention_preview_writes_nothing_while_it_asks_the_storage_for_locks(
    tmp_path: Path,
    runtime: Runtime,
    api: ApiClient,
    moto_s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Previewing an unsaved policy asks the storage, per backup it would delete, how
    long that backup is locked (one HEAD each). The previewed policy used to be set on
    the job's row and autoflushed, so the request held SQLite's write lock (PostgreSQL:
    the job's row) across those requests: every worker's write waited on the storage.
    Each lock question here checks that another connection can write at once."""
    source = make_small_tree(tmp_path / "source")
    bucket = locked_bucket(moto_s3)
    job_id = make_job(
        api, source, lock_destination(api, moto_s3, bucket, "GOVERNANCE", 1), {"keep_last": 5}
    )
    now = datetime.now(UTC)
    old = back_up(runtime, job_id, now - timedelta(hours=3))
    back_up(runtime, job_id, now - timedelta(hours=2))
    asked: list[str] = []
    lock_of = S3Destination.lock_of
    with another_writer(runtime) as write_now:

        def free_while_asking(self: S3Destination, key: str) -> Lock | None:
            write_now()  # raises when the request holds the write lock
            asked.append(key)
            return lock_of(self, key)

        monkeypatch.setattr(S3Destination, "lock_of", free_while_asking)
        response = api.call("GET", f"/api/jobs/{job_id}/retention/preview?keep_last=1")

    assert response.status_code == 200, response.json
    assert response.json["policy"] == {"keep_last": 1}
    (shown,) = [item for item in response.json["backups"] if item["run_id"] == old.run_id]
    assert not shown["keep"] and shown["locked_until"] is not None
    assert old.key in asked
    saved = api.call("GET", f"/api/jobs/{job_id}").json["job"]["retention"]
    assert saved == {"keep_last": 5}  # a preview never saves its policy


def test_test_connection_reports_versioning_object_lock_and_default_retention(
    api: ApiClient, moto_s3: S3Server
) -> None:
    bucket = locked_bucket(moto_s3, {"Mode": "GOVERNANCE", "Days": 5})
    answer = api.call("POST", "/api/destinations/test", s3_destination_payload(moto_s3, bucket))
    assert answer.status_code == 200, answer.json
    assert answer.json["message"].endswith(
        "Versioning: enabled. Object Lock: on, default retention governance 5 days."
    )

    plain = moto_s3.make_bucket()
    answer = api.call("POST", "/api/destinations/test", s3_destination_payload(moto_s3, plain))
    assert answer.json["message"].endswith("Versioning: off. Object Lock: off.")
    locking = {**s3_destination_payload(moto_s3, plain), "object_lock_mode": "COMPLIANCE"}
    answer = api.call("POST", "/api/destinations/test", {**locking, "lock_days": 7})
    assert answer.status_code == 422
    assert "has no Object Lock, so backups cannot be locked" in answer.json["error"]
    answer = api.call("POST", "/api/destinations", locking)
    assert answer.status_code == 422
    assert answer.json["fields"]["lock_days"] == "Enter the days each backup stays locked at least."


def verify(runtime: Runtime, artifact: Artifact) -> tuple[RunStatus, str | None, list[str]]:
    """A verification run of `artifact`, as a worker runs it: (status, error, log lines)."""
    worker = Worker(runtime, f"lock-verify-{artifact.id}")
    with runtime.sessions() as session:
        stored = session.get_one(Artifact, artifact.id)
        run_id = enqueue.queue_verify(session, stored, False, RunTrigger.MANUAL, wake=False).id
        assert lifecycle.claim(session, run_id, worker.worker_id) is lifecycle.Claim.CLAIMED
    outcome = worker.run(run_id)
    worker.pool.shutdown()
    with runtime.sessions() as session:
        lines = session.scalars(select(RunLog.message).where(RunLog.run_id == run_id)).all()
    return outcome.status, outcome.error, list(lines)


def test_verify_reports_a_lock_shortened_or_gone_at_the_server(
    tmp_path: Path, runtime: Runtime, api: ApiClient, moto_s3: S3Server
) -> None:
    source = make_small_tree(tmp_path / "source")
    bucket = locked_bucket(moto_s3)
    destination = lock_destination(api, moto_s3, bucket, "GOVERNANCE", 2)
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    artifact = back_up(runtime, make_job(api, source, destination, {"keep_days": 10}), started)

    status, error, lines = verify(runtime, artifact)
    assert (status, error) == (RunStatus.SUCCESS, None)
    assert any("locked as promised" in line for line in lines), lines

    # Someone holding the bypass permission shortens the archive's lock to one day.
    shortened = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    moto_s3.client().put_object_retention(
        Bucket=bucket,
        Key=artifact.key,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": shortened},
        BypassGovernanceRetention=True,
    )
    status, error, lines = verify(runtime, artifact)
    name = artifact.key.rsplit("/", 1)[-1]
    assert status is RunStatus.WARNING
    assert error is not None and f"{name} is locked only until" in error, error
    assert f"should be until {started + timedelta(days=10):%Y-%m-%d %H:%M}" in error, error
    assert "manifest" not in error  # the manifest's lock is untouched
    assert any(line.startswith(f"{name} is locked only until") for line in lines), lines
