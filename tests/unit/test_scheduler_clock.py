"""The worker's scheduler driven by a fake clock (SQLite, no backups executed).

The executor is a fake behind our own signature: it records the run as a success,
or holds it "running" until the test releases it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mackuper import installation
from mackuper.models import Job, Run, RunStatus
from mackuper.runs.outcome import Outcome
from mackuper.runtime import Runtime
from mackuper.worker.service import Worker


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class FakeExecutor:
    """Finishes runs as success; while `hold` is clear, runs stay running."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.hold = threading.Event()
        self.hold.set()

    def __call__(self, runtime: Runtime, run_id: int, stopping: threading.Event) -> Outcome:
        self.hold.wait(30)
        with runtime.sessions.begin() as session:
            run = session.get_one(Run, run_id)
            run.status = RunStatus.SUCCESS.value
            run.finished_at = datetime.now(UTC)
        return Outcome(RunStatus.SUCCESS, None)


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[tuple[Worker, FakeClock, FakeExecutor]]:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    executor = FakeExecutor(runtime)
    worker = Worker(runtime, "test-worker", clock=clock, execute=executor)
    yield worker, clock, executor
    executor.hold.set()
    worker.pool.shutdown(wait=True)


def add_job(runtime: Runtime, name: str, cron: str | None, zone: str, created: datetime) -> int:
    with runtime.sessions.begin() as session:
        job = Job(
            name=name,
            slug=name,
            source_kind="local",
            schedule=cron,
            timezone=zone,
            created_at=created,
            schedule_anchor=created,
        )
        session.add(job)
        session.flush()
        return job.id


def settle(worker: Worker) -> None:
    for future in list(worker.active.values()):
        future.result(timeout=30)


def runs(runtime: Runtime) -> list[Run]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Run).order_by(Run.id)))


def drive(worker: Worker, clock: FakeClock, until: datetime, step: timedelta) -> None:
    while clock.now < until:
        clock.now += step
        worker.step()
        settle(worker)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring forward: 02:30 does not exist on 2026-03-29 and fires at 03:00 CEST.
        (
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            ["2026-03-28T01:30:00+00:00", "2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"],
        ),
        # Fall back: 02:30 happens twice on 2026-10-25 and fires once, at the first.
        (
            datetime(2026, 10, 24, 12, tzinfo=UTC),
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00", "2026-10-27T01:30:00+00:00"],
        ),
    ],
    ids=["spring", "autumn"],
)
def test_worker_fires_once_per_day_across_dst_changes(
    runtime: Runtime,
    worker: tuple[Worker, FakeClock, FakeExecutor],
    start: datetime,
    expected: list[str],
) -> None:
    scheduler, clock, _ = worker
    clock.now = start
    add_job(runtime, "paris", "30 2 * * *", "Europe/Paris", start)
    drive(scheduler, clock, start + timedelta(days=3), timedelta(minutes=20))
    made = runs(runtime)
    assert [run.scheduled_for.isoformat() for run in made if run.scheduled_for] == expected
    assert all(run.status == RunStatus.SUCCESS.value for run in made)
    # Each fired on the first step after its tick (the fake clock steps 20 minutes).
    assert all(
        timedelta(0) <= run.created_at - run.scheduled_for <= timedelta(minutes=20)
        for run in made
        if run.scheduled_for
    )


def test_tick_during_a_running_backup_is_recorded_as_skipped(
    runtime: Runtime, worker: tuple[Worker, FakeClock, FakeExecutor]
) -> None:
    scheduler, clock, executor = worker
    add_job(runtime, "busy", "* * * * *", "UTC", clock.now)
    executor.hold.clear()
    clock.now += timedelta(minutes=1, seconds=1)
    scheduler.step()
    clock.now += timedelta(minutes=1)
    scheduler.step()
    first, second = runs(runtime)
    assert first.status == RunStatus.RUNNING.value
    assert second.status == RunStatus.SKIPPED.value
    assert second.error == f"skipped: run {first.id} of this job was still going"
    executor.hold.set()
    settle(scheduler)
    clock.now += timedelta(minutes=1)
    scheduler.step()
    settle(scheduler)
    assert [run.status for run in runs(runtime)] == ["success", "skipped", "success"]


def test_missed_ticks_after_downtime_run_once(
    runtime: Runtime, worker: tuple[Worker, FakeClock, FakeExecutor]
) -> None:
    scheduler, clock, _ = worker
    start = clock.now
    add_job(runtime, "often", "*/5 * * * *", "UTC", start)
    clock.now = start + timedelta(hours=3, minutes=2)  # down for 36 ticks
    scheduler.step()
    settle(scheduler)
    scheduler.step()
    (only,) = runs(runtime)
    assert only.scheduled_for == start + timedelta(hours=3)


def test_missed_tick_older_than_the_grace_window_does_not_run(
    runtime: Runtime, worker: tuple[Worker, FakeClock, FakeExecutor]
) -> None:
    scheduler, clock, _ = worker
    with runtime.sessions.begin() as session:
        installation.write(session, installation.GRACE_MINUTES, "60")
    add_job(runtime, "nightly", "0 2 * * *", "UTC", clock.now)
    clock.now += timedelta(hours=3, seconds=1)  # 02:00 was 61 minutes ago
    scheduler.step()
    assert runs(runtime) == []
    clock.now += timedelta(days=1) - timedelta(hours=1)  # 02:00:01 the next day
    scheduler.step()
    settle(scheduler)
    assert [run.scheduled_for for run in runs(runtime)] == [datetime(2026, 1, 2, 2, tzinfo=UTC)]


@pytest.mark.parametrize("limit", [1, 2])
def test_concurrency_limit_keeps_other_runs_queued(
    runtime: Runtime, worker: tuple[Worker, FakeClock, FakeExecutor], limit: int
) -> None:
    scheduler, clock, executor = worker
    with runtime.sessions.begin() as session:
        installation.write(session, installation.MAX_CONCURRENT_RUNS, str(limit))
    for index in range(3):
        job_id = add_job(runtime, f"job{index}", None, "UTC", clock.now)
        with runtime.sessions.begin() as session:
            session.add(Run(job_id=job_id, job_name=f"job{index}", created_at=clock.now))
    executor.hold.clear()
    scheduler.step()
    scheduler.step()
    statuses = [run.status for run in runs(runtime)]
    assert statuses.count("running") == limit
    assert statuses.count("queued") == 3 - limit
    executor.hold.set()
    settle(scheduler)
    scheduler.step()
    settle(scheduler)
    scheduler.step()
    settle(scheduler)
    assert [run.status for run in runs(runtime)] == ["success"] * 3
