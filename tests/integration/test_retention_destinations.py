"""Retention really deletes archives and manifests at S3 and at a local destination."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mackuper.models import Artifact, Run, RunLog, RunStatus
from mackuper.runtime import Runtime
from mackuper.worker.service import Worker
from tests.conftest import ApiClient
from tests.harness import s3_destination_payload
from tests.servers.s3 import S3Bucket
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration


def test_retention_deletes_old_backups_at_s3_and_local_and_keeps_the_newest(
    tmp_path: Path, runtime: Runtime, api: ApiClient, s3_bucket: S3Bucket
) -> None:
    server, bucket = s3_bucket
    source = make_small_tree(tmp_path / "source")
    local_root = tmp_path / "local-backups"
    local_root.mkdir()
    s3_id = api.call("POST", "/api/destinations", s3_destination_payload(server, bucket)).json[
        "destination"
    ]["id"]
    local = api.call(
        "POST", "/api/destinations", {"name": "Disk", "kind": "local", "path": str(local_root)}
    )
    assert local.status_code == 201, local.json
    job = api.call(
        "POST",
        "/api/jobs",
        {
            "name": "Documents",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "archive_format": "tar.gz",
            "destination_ids": [s3_id, local.json["destination"]["id"]],
            "retention": {"keep_last": 2},
        },
    )
    assert job.status_code == 201, job.json
    job_id = job.json["job"]["id"]
    assert job.json["job"]["retention"] == {"keep_last": 2}

    worker = Worker(runtime, "retention-test")
    run_ids = []
    for hours_ago in (3, 2, 1):  # distinct start times give distinct object names
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
            run_ids.append(run.id)
        outcome = worker.run(run.id)
        assert outcome.status is RunStatus.SUCCESS, outcome.error
    worker.pool.shutdown()

    with runtime.sessions() as session:
        artifacts = session.scalars(select(Artifact).order_by(Artifact.id)).all()
        states = {(a.run_id, a.destination_id): a.state for a in artifacts}
        kept_keys = sorted({a.key for a in artifacts if a.state == "stored"})
        logs = session.scalars(
            select(RunLog.message).where(RunLog.message.like("retention deleted%"))
        ).all()
    oldest = run_ids[0]
    assert [state for (run_id, _), state in states.items() if run_id == oldest] == [
        "deleted",
        "deleted",
    ]
    assert all(state == "stored" for (run_id, _), state in states.items() if run_id != oldest)
    assert len(kept_keys) == 2
    expected = sorted([*kept_keys, *(key + ".manifest.json" for key in kept_keys)])
    listed = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    assert sorted(item["Key"] for item in listed) == expected
    on_disk = sorted(str(p.relative_to(local_root)) for p in local_root.rglob("*") if p.is_file())
    assert on_disk == expected
    # One line per destination on the deleted run, and the same on the run that triggered it.
    assert len(logs) == 4

    preview = api.call("GET", f"/api/jobs/{job_id}/retention/preview?keep_last=1").json
    assert (preview["delete_count"], preview["keep_count"]) == (1, 1)
    assert preview["backups"][0]["reasons"] == ["newest successful backup", "one of the last 1"]

    # What is left opens with GNU tar and holds the source.
    newest = local_root / kept_keys[-1]
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(newest), "-C", str(extracted)], check=True)
    assert file_hashes(extracted / str(source).lstrip("/")) == file_hashes(source)
