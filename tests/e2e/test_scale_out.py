"""The scale-out recipe (docker-compose.scale.yml) as processes: 2 `mackuper web` and
2 `mackuper worker` on one fresh PostgreSQL database, all started at the same
moment (so their start-up migrations race), 50 backups requested through both
web processes' API, and each backup runs exactly once.

Like the compose file, the processes share only DATABASE_URL, MACKUPER_MASTER_KEY
and SECRET_KEY; each has its own data directory, as on separate machines.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from mackuper.models import Artifact, Run, WorkerHeartbeat
from tests.harness import BrowserClient, MackuperProcess
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e

BACKUPS = 50


def tiny_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.txt").write_text("beta\n" * 100)
    return root


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def test_two_web_and_two_worker_processes_on_postgresql_run_each_backup_exactly_once(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    source = tiny_tree(tmp_path / "source")
    backups = tmp_path / "backups"
    shared = {
        "DATABASE_URL": empty_postgres_url,
        "MACKUPER_MASTER_KEY": Fernet.generate_key().decode(),
        "SECRET_KEY": uuid.uuid4().hex,
        "MACKUPER_MAX_CONCURRENT_RUNS": "2",
    }
    processes = [
        MackuperProcess(tmp_path / f"{name}-data", shared)
        for name in ("web-1", "web-2", "worker-1", "worker-2")
    ]
    web_1, web_2, worker_1, worker_2 = processes
    engine = create_engine(empty_postgres_url)
    try:
        # All four at once on an empty database: the migrations race for the lock.
        web_1.start("web", wait=False)
        web_2.start("web", wait=False)
        worker_1.start("worker")
        worker_2.start("worker")
        web_1.wait_ready(timeout=90)
        web_2.wait_ready(timeout=90)

        def both_workers_beating() -> bool:
            for process in (worker_1, worker_2):
                assert process.is_running(), process.log()
            with Session(engine) as session:
                return session.scalar(select(func.count()).select_from(WorkerHeartbeat)) == 2

        wait_for(both_workers_beating, 90, "both workers' heartbeats")

        first = BrowserClient(web_1.url)
        destination = first.complete_setup(
            {"name": "Shared disk", "kind": "local", "path": str(backups)}
        )
        second = BrowserClient(web_2.url)
        second.login()  # the same SECRET_KEY and database: web-2 accepts web-1's admin
        clients = [first, second]

        run_ids = []
        for index in range(BACKUPS):
            browser = clients[index % 2]
            job = browser.ok(
                "POST",
                "/api/jobs",
                {
                    "name": f"Job {index:02d}",
                    "source_kind": "local",
                    "source": {"paths": [str(source)], "excludes": []},
                    "archive_format": "tar.gz",
                    "schedule": "",
                    "destination_ids": [destination["id"]],
                },
            )["job"]
            # created through one web process, started through the other
            started = clients[(index + 1) % 2].ok("POST", f"/api/jobs/{job['id']}/run")
            run_ids.append(started["run"]["id"])
        finished = [first.wait_run(run_id, timeout=180) for run_id in run_ids]

        with Session(engine) as session:
            runs = session.scalars(select(Run).where(Run.id.in_(run_ids))).all()
            artifacts = session.scalars(select(Artifact).where(Artifact.run_id.in_(run_ids))).all()
            heads = session.scalars(text("SELECT version_num FROM alembic_version")).all()
            worker_ids = [run.worker_id for run in runs]
    finally:
        for process in processes:
            try:
                process.stop()
            finally:
                process.kill_all()
        engine.dispose()

    assert [run["status"] for run in finished] == ["success"] * BACKUPS, [
        (run["id"], run["status"], run["error"]) for run in finished if run["status"] != "success"
    ]
    # Exactly once: one artifact row per run (a second execution would open another),
    # one archive per job on disk, and every run claimed by one of the two workers.
    assert Counter(artifact.run_id for artifact in artifacts) == Counter(run_ids)
    assert all(artifact.state == "stored" for artifact in artifacts)
    archives = sorted(backups.rglob("*.tar.gz"))
    assert len(archives) == BACKUPS
    assert len({archive.relative_to(backups).parts[0] for archive in archives}) == BACKUPS
    # By process (host:pid): a worker that starts afresh when idle keeps its pid.
    per_worker = Counter(str(worker_id).rsplit(":", 1)[0] for worker_id in worker_ids)
    assert len(per_worker) == 2 and sum(per_worker.values()) == BACKUPS, per_worker
    assert heads, "migrations did not run"
    for process in processes:
        assert "Traceback" not in process.log(), process.log()

    expected = file_hashes(source)
    for archive in archives:
        out = tmp_path / "extract" / archive.parent.relative_to(backups).parts[0]
        out.mkdir(parents=True)
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
        assert file_hashes(out / str(source).lstrip("/")) == expected
