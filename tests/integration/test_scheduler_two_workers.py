"""Exactly once: two worker processes on one PostgreSQL database, 24 ticks.

Why a fast test clock rather than per-second cron: cron has minutes as its finest
field, and waiting 20 real minutes is out of the question. Each worker process
maps real time to test time the same way (one test minute per second), so both
see every per-minute tick at the same real moment and race for it through the
real code path: the anchor update, the unique (job, tick) constraint and the
conditional-UPDATE claim, on a real PostgreSQL server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from mackuper.config import load_settings
from mackuper.models import Job, Run, RunLog, RunStatus
from mackuper.runtime import open_runtime
from tests.integration.scheduler_worker import TEST_EPOCH

pytestmark = pytest.mark.integration

TICKS = 24
SECONDS_PER_MINUTE = 1.0
REQUIRED = 20
ROOT = Path(__file__).resolve().parents[2]


def test_two_workers_turn_each_tick_into_exactly_one_run(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": empty_postgres_url,
        "MACKUPER_DATA_DIR": str(tmp_path / "data"),
        "MACKUPER_MASTER_KEY": Fernet.generate_key().decode(),
        "PYTHONPATH": str(ROOT),
    }
    runtime = open_runtime(load_settings(env))
    try:
        with runtime.sessions.begin() as session:
            job = Job(
                name="every minute",
                slug="every-minute",
                source_kind="local",
                schedule="* * * * *",
                timezone="UTC",
                created_at=TEST_EPOCH,
                schedule_anchor=TEST_EPOCH,
            )
            session.add(job)
            session.flush()
            job_id = job.id
        end = TICKS + 0.5
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.scheduler_worker",
                    name,
                    str(SECONDS_PER_MINUTE),
                    str(end),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("worker-a", "worker-b")
        ]
        for process in workers:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        # Both are up: test time starts now, the same in both processes.
        epoch = f"{time.time()}\n"
        for process in workers:
            assert process.stdin is not None
            process.stdin.write(epoch)
            process.stdin.flush()
        for process in workers:
            _, errors = process.communicate(timeout=120)
            assert process.returncode == 0, errors

        with runtime.sessions() as session:
            runs = session.scalars(select(Run).where(Run.job_id == job_id)).all()
            ticks = sorted(run.scheduled_for for run in runs if run.scheduled_for)
            executions: dict[int, int] = {
                run_id: count
                for run_id, count in session.execute(
                    select(RunLog.run_id, func.count())
                    .where(RunLog.message.like("executed by %"))
                    .group_by(RunLog.run_id)
                )
            }
            executors = set(
                session.scalars(select(RunLog.message).where(RunLog.message.like("executed by %")))
            )
        expected = [TEST_EPOCH + timedelta(minutes=minute) for minute in range(1, TICKS + 1)]
        # Each tick made at most one run. A tick is only lost to the missed-tick rule
        # (two ticks in one step run once) if both workers stalled for a whole test minute.
        assert len(set(ticks)) == len(ticks) == len(runs)
        assert set(ticks) <= set(expected)
        assert len(ticks) >= REQUIRED, f"only {len(ticks)} of {TICKS} ticks ran"
        ran = [run for run in runs if run.status == RunStatus.SUCCESS.value]
        assert all(run.status in {"success", "skipped"} for run in runs)
        # A tick that comes while the previous run is still being recorded is skipped
        # (a run of its own, with the reason); a loaded machine makes a few of those.
        assert len(ran) >= REQUIRED // 2
        assert all(executions.get(run.id) == 1 for run in ran)  # each run executed once
        assert executors == {"executed by worker-a", "executed by worker-b"}
    finally:
        runtime.engine.dispose()
