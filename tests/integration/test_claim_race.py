"""Two workers claiming two queued runs of one job at the same moment, on PostgreSQL.

Under READ COMMITTED each claim's "no run of this job is running" check sees the
database without the other's uncommitted claim, so both used to win and the job
ran twice at once (two archives under one name). The partial unique index on
running runs makes the second claim wait for the first, then lose.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from mackuper.config import load_settings
from mackuper.models import Job, Run, RunStatus
from mackuper.runtime import Runtime, open_runtime
from mackuper.worker.service import Worker

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(tmp_path: Path, empty_postgres_url: str) -> Iterator[Runtime]:
    settings = load_settings(
        {
            "DATABASE_URL": empty_postgres_url,
            "MACKUPER_DATA_DIR": str(tmp_path / "data"),
            "MACKUPER_MASTER_KEY": Fernet.generate_key().decode(),
        }
    )
    opened = open_runtime(settings)
    yield opened
    opened.engine.dispose()


def _two_queued_runs(runtime: Runtime) -> tuple[int, int]:
    with runtime.sessions.begin() as session:
        job = Job(name="docs", slug="docs", source_kind="local")
        session.add(job)
        session.flush()
        runs = [Run(job_id=job.id, job_name="docs", status="queued") for _ in range(2)]
        session.add_all(runs)
        session.flush()
        return runs[0].id, runs[1].id


def _statuses(runtime: Runtime, *run_ids: int) -> list[str]:
    with runtime.sessions() as session:
        return [session.scalar(select(Run.status).where(Run.id == run_id)) for run_id in run_ids]


def test_the_second_of_two_simultaneous_claims_of_one_job_loses(runtime: Runtime) -> None:
    first, second = _two_queued_runs(runtime)
    worker = Worker(runtime, worker_id="worker-b")
    result: dict[str, bool] = {}
    try:
        with runtime.engine.connect() as other_worker:
            # Worker A has claimed the first run and not committed yet.
            other_worker.execute(
                update(Run).where(Run.id == first).values(status=RunStatus.RUNNING.value)
            )

            def claim_second() -> None:
                with runtime.sessions() as session:
                    result["claimed"] = worker.claim(session, second)

            thread = threading.Thread(target=claim_second)
            thread.start()
            time.sleep(1.0)
            assert thread.is_alive(), "the second claim should wait for the first"
            other_worker.commit()
            thread.join(timeout=10)
            assert not thread.is_alive()
    finally:
        worker.pool.shutdown(wait=False)

    assert result == {"claimed": False}
    assert _statuses(runtime, first, second) == ["running", "queued"]


def test_runs_of_one_job_still_follow_each_other(runtime: Runtime) -> None:
    first, second = _two_queued_runs(runtime)
    worker = Worker(runtime, worker_id="worker-a")
    try:
        with runtime.sessions() as session:
            assert worker.claim(session, first)
            assert not worker.claim(session, second)  # the job is running
        with runtime.sessions.begin() as session:
            session.execute(update(Run).where(Run.id == first).values(status="success"))
        with runtime.sessions() as session:
            assert worker.claim(session, second)
    finally:
        worker.pool.shutdown(wait=False)
    assert _statuses(runtime, first, second) == ["success", "running"]


def test_a_run_that_ended_but_settles_still_holds_its_job_until_settled_or_its_worker_dies(
    runtime: Runtime,
) -> None:
    # Its status is written before its post-command and retention (`Run.settling`).
    first, second = _two_queued_runs(runtime)
    worker = Worker(runtime, worker_id="worker-a")
    try:
        with runtime.sessions() as session:
            assert worker.claim(session, first)
        with runtime.sessions.begin() as session:
            session.execute(
                update(Run)
                .where(Run.id == first)
                .values(status="success", settling=True, worker_id="gone:1:dead")
            )
        with runtime.sessions() as session:
            assert not worker.claim(session, second)  # still in its post-phase
        worker.recover()  # its worker sent no heartbeat: it died in the post-phase
        with runtime.sessions() as session:
            assert worker.claim(session, second)
    finally:
        worker.pool.shutdown(wait=False)
    assert _statuses(runtime, first, second) == ["success", "running"]
