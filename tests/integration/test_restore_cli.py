"""`mackuper verify` and `mackuper restore` without a browser, with each overwrite policy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mackuper.models import Artifact, Run, RunKind, RunStatus
from mackuper.runs import lifecycle
from mackuper.runtime import Runtime
from mackuper.worker.service import Worker
from tests.conftest import ApiClient
from tests.integration.restore_support import backed_up, local_destination, ok
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration


def _mackuper(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACKUPER_")}
    env["MACKUPER_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "mackuper", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_verifies_and_restores_with_skip_keep_both_and_overwrite(
    tmp_path: Path, api: ApiClient, runtime: Runtime, data_dir: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    destination = local_destination(api, tmp_path / "storage")
    backup = backed_up(api, runtime, source, destination["id"], "tar.zst")
    backup_id = str(backup["id"])

    verified = _mackuper(data_dir, "verify", backup_id, "--deep")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "matches its manifest" in verified.stdout

    target = tmp_path / "target"
    inside = target / str(source).lstrip("/")
    docs = str(source / "docs").lstrip("/")
    dry = _mackuper(data_dir, "restore", backup_id, "--to", str(target), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would restore 4 file(s), 1 link(s)" in dry.stdout and not target.exists()

    first = _mackuper(data_dir, "restore", backup_id, "--to", str(target), "--path", docs)
    assert first.returncode == 0, first.stdout + first.stderr
    readme = inside / "docs" / "readme.txt"
    readme.write_text("changed after the backup\n")

    skip = _mackuper(data_dir, "restore", backup_id, "--to", str(target), "--path", docs)
    assert skip.returncode == 0 and "kept 2 existing" in skip.stdout
    assert readme.read_text() == "changed after the backup\n"

    both = _mackuper(
        data_dir, "restore", backup_id, "--to", str(target), "--path", docs, "--policy", "keep-both"
    )
    assert both.returncode == 0, both.stdout + both.stderr
    assert readme.read_text() == "changed after the backup\n"
    assert (readme.parent / "readme (restored).txt").read_text() == "hello backup\n"

    overwrite = _mackuper(
        data_dir, "restore", backup_id, "--to", str(target), "--path", docs, "--policy", "overwrite"
    )
    assert overwrite.returncode == 0, overwrite.stdout + overwrite.stderr
    assert readme.read_text() == "hello backup\n"
    restored = file_hashes(inside / "docs")
    expected = file_hashes(source / "docs")
    assert {k: v for k, v in restored.items() if "(restored" not in k} == expected

    history = ok(api, "GET", "/api/runs?per_page=50")["runs"]
    assert sorted(run["kind"] for run in history) == ["backup", *["restore"] * 5, "verify"]


def test_cli_restore_waits_its_turn_behind_a_running_backup_of_the_job(
    tmp_path: Path, api: ApiClient, runtime: Runtime, data_dir: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    destination = local_destination(api, tmp_path / "storage")
    backup = backed_up(api, runtime, source, destination["id"], "tar.gz")
    with runtime.sessions.begin() as session:
        job_id = session.scalar(select(Artifact.job_id).where(Artifact.id == backup["id"]))
        session.add(Run(job_id=job_id, job_name="busy", status="running"))  # a backup under way

    target = tmp_path / "target"
    refused = _mackuper(data_dir, "restore", str(backup["id"]), "--to", str(target))

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "another run of this job is running" in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr
    assert not target.exists()
    with runtime.sessions() as session:  # nothing left queued for a worker to run later
        kinds = session.execute(select(Run.kind, Run.status).where(Run.job_id == job_id)).all()
    assert sorted(kinds) == [("backup", "running"), ("backup", "success"), ("restore", "cancelled")]


def test_a_worker_leaves_a_live_cli_run_alone_and_interrupts_one_whose_process_died(
    runtime: Runtime,
) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()  # its pid no longer lives
    dead_id = f"cli:{socket.gethostname()}:{ended.pid}"
    with runtime.sessions.begin() as session:
        runs = [
            Run(
                job_name="restored elsewhere",
                kind=RunKind.RESTORE,
                status=RunStatus.RUNNING,
                worker_id=worker_id,
                started_at=datetime.now(UTC),
            )
            for worker_id in (lifecycle.cli_worker_id(), dead_id)
        ]
        session.add_all(runs)
        session.flush()
        live, dead = (run.id for run in runs)
    worker = Worker(runtime, "survivor")
    try:
        worker.recover()
    finally:
        worker.pool.shutdown()

    with runtime.sessions() as session:
        assert session.get_one(Run, live).status is RunStatus.RUNNING
        assert session.get_one(Run, dead).status is RunStatus.INTERRUPTED
