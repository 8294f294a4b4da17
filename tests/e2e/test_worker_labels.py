"""Workers on two "machines" (two `mackuper worker` processes labelled alpha and beta,
each with its own data directory) on one PostgreSQL database: every backup of a job
labelled alpha runs on the alpha worker and every one labelled beta on the beta
worker, whichever worker looks first; a job labelled for a machine no worker runs on
stays queued, and its run says which label it waits for.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from mackuper.models import Run, WorkerHeartbeat
from tests.e2e.test_scale_out import tiny_tree, wait_for
from tests.harness import BrowserClient, MackuperProcess

pytestmark = pytest.mark.e2e

RUNS_PER_LABEL = 6


def _process(worker_id: str | None) -> str:
    """host:pid of a worker id (host:pid:random): what a worker starting afresh keeps."""
    return str(worker_id).rsplit(":", 1)[0]


def test_each_run_goes_to_a_worker_of_its_label_and_a_label_nobody_has_waits_saying_so(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    shared = {
        "DATABASE_URL": empty_postgres_url,
        "MACKUPER_MASTER_KEY": Fernet.generate_key().decode(),
        "SECRET_KEY": uuid.uuid4().hex,
        "MACKUPER_MAX_CONCURRENT_RUNS": "4",
    }
    web = MackuperProcess(tmp_path / "web-data", shared)
    workers = {
        label: MackuperProcess(
            tmp_path / f"worker-{label}-data", {**shared, "MACKUPER_WORKER_LABELS": label}
        )
        for label in ("alpha", "beta")
    }
    engine = create_engine(empty_postgres_url)
    try:
        web.start("web")
        for worker in workers.values():
            worker.start("worker")

        def both_beating() -> bool:
            for worker in workers.values():
                assert worker.is_running(), worker.log()
            with Session(engine) as session:
                return session.scalar(select(func.count()).select_from(WorkerHeartbeat)) == 2

        wait_for(both_beating, 90, "both workers' heartbeats")
        browser = BrowserClient(web.url)
        disk = browser.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "backups")}
        )
        live = browser.ok("GET", "/api/ui/workers")
        assert live["labels"] == ["alpha", "beta"]

        jobs = {
            label: browser.create_job(
                f"Files on {label}",
                tiny_tree(tmp_path / f"source-{label}"),
                disk["id"],
                worker_label=label,
            )
            for label in ("alpha", "beta", "gamma")
        }
        assert jobs["alpha"]["worker_label"] == "alpha"
        stranded = browser.ok("POST", f"/api/jobs/{jobs['gamma']['id']}/run")["run"]
        expected: dict[int, str] = {}
        for _ in range(RUNS_PER_LABEL):
            for label in ("alpha", "beta"):
                again = {"another": True}  # several queued backups of one job, on purpose
                run = browser.ok("POST", f"/api/jobs/{jobs[label]['id']}/run", again)["run"]
                expected[run["id"]] = label
        finished = [browser.wait_run(run_id, timeout=180) for run_id in expected]
        assert [run["status"] for run in finished] == ["success"] * len(expected), finished

        waiting = browser.ok("GET", f"/api/runs/{stranded['id']}")["run"]
        log = browser.ok("GET", f"/api/runs/{stranded['id']}/log")["lines"]
        # A worker that starts afresh after its runs (memory) beats under a new id: wait
        # for its new row, and compare by process (host:pid), which it keeps.
        wait_for(both_beating, 90, "both workers' heartbeats after the runs")
        with Session(engine) as session:
            labels_of = {
                _process(beat.worker_id): beat.labels
                for beat in session.scalars(select(WorkerHeartbeat))
            }
            ran_on = {
                run_id: _process(worker_id)
                for run_id, worker_id in session.execute(
                    select(Run.id, Run.worker_id).where(Run.id.in_(expected))
                )
            }
        said = "\n".join(f"--- worker {name}:\n{one.log()}" for name, one in workers.items())
    finally:
        for process in (web, *workers.values()):
            try:
                process.stop()
            finally:
                process.kill_all()
        engine.dispose()

    assert sorted(labels_of.values()) == [["alpha"], ["beta"]], f"{labels_of}\n{said}"
    wrong = {
        run_id: (label, ran_on[run_id])
        for run_id, label in expected.items()
        if labels_of.get(ran_on[run_id] or "") != [label]
    }
    assert not wrong, f"runs executed by a worker without their label: {wrong}"
    # Both machines worked: neither worker took everything.
    assert {ran_on[run_id] for run_id in expected} == set(labels_of)
    # Queued all along (the others ran meanwhile), and saying for what.
    assert waiting["status"] == "queued" and waiting["worker_id"] is None
    assert waiting["worker_label"] == "gamma"
    assert "'gamma'" in (waiting["waiting_for"] or ""), waiting
    assert waiting["queue_position"] == 1
    assert [line["message"] for line in log] == [waiting["waiting_for"]]
    for process in (web, *workers.values()):
        assert "Traceback" not in process.log(), process.log()
