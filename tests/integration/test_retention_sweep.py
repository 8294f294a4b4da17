"""The worker's daily retention sweep deletes what the policy says, and never the backup
a running restore reads (issue 24, item 11).

The restore is a real one, queued through the API and executing: its reads from
the S3 server (moto) are held by an HTTP front until the sweep is over, so the run
is `running` and reading while the sweep decides.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mackuper.models import Artifact, Job, Run, RunStatus
from mackuper.runtime import Runtime
from mackuper.worker.service import Worker
from tests.conftest import ApiClient
from tests.harness import s3_destination_payload
from tests.integration.engine_support import extract
from tests.integration.restore_support import execute_queued, ok
from tests.servers.faults import endpoint_address
from tests.servers.http_front import http_front
from tests.servers.s3 import S3Bucket
from tests.trees import file_hashes, make_small_tree

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _backup(runtime: Runtime, worker: Worker, job_id: int, hours_ago: int) -> int:
    with runtime.sessions.begin() as session:
        run = Run(
            job_id=job_id,
            job_name="Documents",
            status=RunStatus.RUNNING.value,
            worker_id=worker.worker_id,
            started_at=datetime.now(UTC) - timedelta(hours=hours_ago),
        )
        session.add(run)
        session.flush()
        run_id = run.id
    outcome = worker.run(run_id)
    assert outcome.status is RunStatus.SUCCESS, outcome.error
    return run_id


def _artifacts(runtime: Runtime) -> dict[int, Artifact]:
    """Run id -> its one artifact."""
    with runtime.sessions() as session:
        return {a.run_id: a for a in session.scalars(select(Artifact).order_by(Artifact.id))}


def _stored_keys(bucket: S3Bucket) -> list[str]:
    server, name = bucket
    listed = server.client().list_objects_v2(Bucket=name).get("Contents", [])  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in listed)


def test_daily_sweep_deletes_what_the_policy_says_but_not_the_backup_a_restore_reads(
    tmp_path: Path, runtime: Runtime, api: ApiClient, s3_bucket: S3Bucket
) -> None:
    server, bucket = s3_bucket
    held, release = threading.Event(), threading.Event()
    reading: list[str] = []

    def hold_restore_reads(method: str, path: str) -> bool:
        if method == "GET" and any(key in path for key in reading):
            held.set()
            release.wait(60)
        return False

    with http_front(endpoint_address(server.endpoint_url), hold_restore_reads) as front:
        payload: dict[str, Any] = {**s3_destination_payload(server, bucket), "test": False}
        payload["endpoint_url"] = front.url
        destination = ok(api, "POST", "/api/destinations", payload)["destination"]
        source = make_small_tree(tmp_path / "source")
        job = ok(
            api,
            "POST",
            "/api/jobs",
            {
                "name": "Documents",
                "source_kind": "local",
                "source": {"paths": [str(source)], "excludes": []},
                "archive_format": "tar",
                "schedule": "",
                "destination_ids": [destination["id"]],
            },
        )["job"]
        worker = Worker(runtime, "sweep-test")
        states: list[dict[str, str]] = []
        run_ids = []
        for number, hours_ago in enumerate((3, 2, 1)):
            (source / "state.txt").write_text(f"state {number}\n")
            states.append(file_hashes(source))
            run_ids.append(_backup(runtime, worker, job["id"], hours_ago))
        oldest, middle, newest = (_artifacts(runtime)[run_id] for run_id in run_ids)
        with runtime.sessions.begin() as session:
            session.get_one(Job, job["id"]).retention = {"keep_last": 1}

        # A restore of the oldest backup, executing and reading it while the sweep runs.
        reading.append(oldest.key)
        body = {
            "artifact_id": oldest.id,
            "target": {"kind": "local", "path": str(tmp_path / "out")},
        }
        restore_run = ok(api, "POST", "/api/restore", body)["run"]
        restoring = threading.Thread(target=execute_queued, args=(runtime, restore_run["id"]))
        restoring.start()
        try:
            assert held.wait(30), "the restore never read its backup"
            with runtime.sessions() as session:
                assert session.get_one(Run, restore_run["id"]).status is RunStatus.RUNNING

            worker.daily_maintenance(datetime.now(UTC))

            after_sweep = _artifacts(runtime)
        finally:
            release.set()
            restoring.join(timeout=60)
        assert [after_sweep[run_id].state for run_id in run_ids] == ["stored", "deleted", "stored"]
        kept = sorted([oldest.key, newest.key])
        assert _stored_keys(s3_bucket) == sorted([*kept, *(k + ".manifest.json" for k in kept)])
        assert middle.key not in _stored_keys(s3_bucket)

        restored = ok(api, "GET", f"/api/runs/{restore_run['id']}")["run"]
        assert restored["status"] == "success", restored["error"]
        assert file_hashes(tmp_path / "out" / str(source).lstrip("/")) == states[0]

        # Once the restore is over, the next day's sweep deletes the oldest too.
        worker.daily_maintenance(datetime.now(UTC) + timedelta(days=1))
        worker.pool.shutdown()

    assert [_artifacts(runtime)[run_id].state for run_id in run_ids] == [
        "deleted",
        "deleted",
        "stored",
    ]
    assert _stored_keys(s3_bucket) == [newest.key, newest.key + ".manifest.json"]
    archive = tmp_path / "newest.tar"
    archive.write_bytes(server.client().get_object(Bucket=bucket, Key=newest.key)["Body"].read())  # type: ignore[attr-defined]
    extract(archive, "tar", tmp_path / "extracted")
    assert file_hashes(tmp_path / "extracted" / str(source).lstrip("/")) == states[2]
