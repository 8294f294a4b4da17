"""A worker's claiming on a real SQLite database, its executor held so claimed runs
stay running: the restore lane beside full backups, labels, and a busy job that
no longer hides the runs queued behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mackuper import installation
from mackuper.models import Job, Run, RunKind, RunStatus, Setting
from mackuper.runs import lifecycle
from mackuper.runs.outcome import Outcome
from mackuper.runtime import Runtime
from mackuper.worker.service import Worker

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[Worker]:
    release = threading.Event()

    def hold(_runtime: Runtime, _run_id: int, _stopping: threading.Event) -> Outcome:
        release.wait(30)
        return Outcome(RunStatus.SUCCESS, None)

    worker = Worker(runtime, "worker-alpha", execute=hold)
    worker.labels = ("alpha",)
    yield worker
    release.set()
    worker.pool.shutdown(wait=True)


def _queue(runtime: Runtime, *runs: tuple[str, RunKind, str | None], limit: int) -> list[int]:
    """Queue runs (job name, kind, label), one second apart, oldest first; ids in order."""
    with runtime.sessions.begin() as session:
        session.add(Setting(key=installation.MAX_CONCURRENT_RUNS, value=str(limit)))
        jobs: dict[str, Job] = {}
        rows = []
        for second, (name, kind, label) in enumerate(runs):
            if name not in jobs:
                jobs[name] = Job(name=name, slug=name, source_kind="local")
                session.add(jobs[name])
                session.flush()
            rows.append(
                Run(
                    job_id=jobs[name].id,
                    job_name=name,
                    kind=kind,
                    worker_label=label,
                    created_at=START + timedelta(seconds=second),
                )
            )
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _running(runtime: Runtime) -> set[int]:
    with runtime.sessions() as session:
        return set(session.scalars(select(Run.id).where(Run.status == RunStatus.RUNNING)))


def test_restores_and_verifications_have_a_slot_beside_a_full_backup_lane(
    runtime: Runtime, worker: Worker
) -> None:
    first, second, third, verify, restore = _queue(
        runtime,
        ("a", RunKind.BACKUP, None),
        ("b", RunKind.BACKUP, None),
        ("c", RunKind.BACKUP, None),
        ("d", RunKind.VERIFY, None),
        ("e", RunKind.RESTORE, None),
        limit=1,
    )
    worker.claim_and_start()
    # One backup (the limit), and the restore ahead of the older verification.
    assert _running(runtime) == {first, restore}
    worker.claim_and_start()
    assert _running(runtime) == {first, restore}


def test_a_worker_takes_only_runs_without_a_label_or_with_one_of_its_own(
    runtime: Runtime, worker: Worker
) -> None:
    beta, alpha, anywhere = _queue(
        runtime,
        ("a", RunKind.BACKUP, "beta"),
        ("b", RunKind.BACKUP, "alpha"),
        ("c", RunKind.BACKUP, None),
        limit=5,
    )
    worker.claim_and_start()
    assert _running(runtime) == {alpha, anywhere}
    with runtime.sessions() as session:
        refused = lifecycle.claim(session, beta, "worker-alpha", ("alpha",))
        assert refused is lifecycle.Claim.ELSEWHERE
        # The mackuper command runs what it is told to, where it is typed.
        assert lifecycle.claim(session, beta, "cli:here:1") is lifecycle.Claim.CLAIMED


def test_queued_runs_of_a_busy_job_do_not_hide_the_runs_behind_them(
    runtime: Runtime, worker: Worker
) -> None:
    ids = _queue(runtime, *[("a", RunKind.BACKUP, None)] * 9, ("b", RunKind.BACKUP, None), limit=2)
    worker.claim_and_start()
    worker.claim_and_start()
    # Job a may run once at a time; b's run, tenth in line, takes the second slot
    # (by the next look: candidates are read before the look claims any of them).
    assert _running(runtime) == {ids[0], ids[-1]}
