"""The one lifecycle of every run, whoever runs it (a worker or the CLI):

    claim -> prepare -> start alerts and pre command -> execute -> record
          -> post command and end alerts -> after (a backup's retention)

A kind (`registry.TASKS`) only prepares and executes; everything around it, and
the mapping of every exception to a status (`outcome.py`), happens here once.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mackuper.db import changed_rows
from mackuper.models import Job, Run, RunStatus
from mackuper.runs.alerts import RunEdges
from mackuper.runs.outcome import Outcome, from_exception, is_unexpected
from mackuper.runs.queue import job_busy, label_allows
from mackuper.runs.recorder import RunRecorder
from mackuper.runs.registry import TASKS
from mackuper.runs.task import Clock, Finished, RunContext, Task
from mackuper.runs.wake import commit_and_wake
from mackuper.runtime import Runtime

logger = logging.getLogger(__name__)


def system_clock() -> datetime:
    return datetime.now(UTC)


CLI_PREFIX = "cli:"


def cli_worker_id() -> str:
    """The worker id of a run the `mackuper` command runs itself: cli:HOST:PID.

    It sends no heartbeat (it is not a scheduler); a worker on the same host asks
    whether that process still lives before it calls the run interrupted.
    """
    return f"{CLI_PREFIX}{socket.gethostname()}:{os.getpid()}"


def cli_process(worker_id: str) -> tuple[str, int] | None:
    """(host, pid) of a `cli_worker_id`, or None for any other worker id."""
    if not worker_id.startswith(CLI_PREFIX):
        return None
    host, _, pid = worker_id.removeprefix(CLI_PREFIX).rpartition(":")
    return (host, int(pid)) if pid.isdigit() else None


class Claim(enum.Enum):
    CLAIMED = "claimed"
    JOB_BUSY = "another run of its job is running"
    TAKEN = "someone else has it, or it is no longer queued"
    ELSEWHERE = "it waits for a worker with another label"


def claim(
    session: Session, run_id: int, worker_id: str, labels: Collection[str] | None = None
) -> Claim:
    """Take a queued run for `worker_id` with one conditional UPDATE, and commit.

    A worker passes its `labels`: a run that names another label is not its to take.
    None (the `mackuper` command) takes any run: whoever types it chose the machine.
    """
    try:
        changed = changed_rows(
            session.execute(
                update(Run)
                .where(
                    Run.id == run_id,
                    Run.status == RunStatus.QUEUED.value,
                    ~job_busy(),
                    label_allows(labels),
                )
                .values(
                    status=RunStatus.RUNNING.value,
                    worker_id=worker_id,
                    started_at=datetime.now(UTC),
                )
            )
        )
        session.commit()
    except IntegrityError:
        # Another worker started a run of this job at the same moment; the
        # unique index on running runs let only one of us through.
        session.rollback()
        return Claim.JOB_BUSY
    if changed == 1:
        return Claim.CLAIMED
    row = session.execute(select(Run.status, Run.worker_label).where(Run.id == run_id)).first()
    if row is None or row.status is not RunStatus.QUEUED:
        return Claim.TAKEN
    if labels is not None and row.worker_label is not None and row.worker_label not in labels:
        return Claim.ELSEWHERE
    return Claim.JOB_BUSY


def execute_run(
    runtime: Runtime, run_id: int, stopping: threading.Event, clock: Clock = system_clock
) -> Outcome:
    """Run a claimed run of any kind to its end and record the outcome; never raises."""
    recorder = RunRecorder(runtime.sessions, run_id, stopping, runtime.settings.retry_seconds)
    context = RunContext(runtime, run_id, recorder, stopping, clock)
    finished: Finished | None = None
    edges: RunEdges | None = None
    task: Task[Any] | None = None
    kind = "run"
    try:
        with runtime.sessions() as session:
            run = session.get_one(Run, run_id)
            kind, task = run.kind.value, TASKS[run.kind]
            job = session.get(Job, run.job_id) if run.job_id is not None else None
            edges = RunEdges.load(runtime, recorder, run, job, task)
            work = task.prepare(context, session, run, job)
            started_at = run.started_at
        recorder.log("info", f"{kind} run {run_id} of job {run.job_name!r} started")
        edges.announce_start(started_at)
        edges.run_pre_command(stopping)
        recorder.check_stop()
        finished = task.execute(context, work)
        outcome = edges.with_pre_problem(finished.outcome)
    except Exception as error:  # noqa: BLE001 - every failure becomes a recorded status
        outcome = from_exception(error)
        if outcome.status is RunStatus.FAILED:
            logger.warning(
                "%s run %s failed: %s", kind, run_id, outcome.error, exc_info=is_unexpected(error)
            )
    _record(runtime, recorder, run_id, outcome, finished)
    try:
        if edges is not None:
            outcome = edges.finish(outcome, stopping)
        if task is not None:
            task.after(context, outcome)
    finally:
        _settled(runtime, recorder, run_id)
    return outcome


def _settled(runtime: Runtime, recorder: RunRecorder, run_id: int) -> None:
    """Post-command, alerts and retention are done: the job's next run may be claimed,
    and the workers are woken to claim it (a run of this job queued for another
    worker's label, or one waiting for the slot this one held) without a poll."""

    def write() -> None:
        with runtime.sessions() as session:
            session.execute(update(Run).where(Run.id == run_id).values(settling=False))
            commit_and_wake(session)

    recorder.retrying(write)


def _record(
    runtime: Runtime,
    recorder: RunRecorder,
    run_id: int,
    outcome: Outcome,
    finished: Finished | None,
) -> None:
    """The final log line and the run's status, error, end time, counts and results."""
    level = "info" if outcome.status is RunStatus.SUCCESS else "error"
    suffix = f": {outcome.error}" if outcome.error else ""
    recorder.log(level, f"finished: {outcome.status.value}{suffix}")
    values: dict[str, Any] = dict(finished.values) if finished is not None else {}

    def write() -> None:
        with runtime.sessions.begin() as session:
            if finished is not None and finished.results is not None:
                details = dict(session.get_one(Run, run_id).details)
                values["details"] = {**details, "results": finished.results}
            session.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(
                    status=outcome.status.value,
                    error=outcome.error,
                    finished_at=datetime.now(UTC),
                    current_file=None,
                    settling=True,
                    **values,
                )
            )

    # Through a database restart too: a run left 'running' by a live worker stays so.
    recorder.retrying(write)


def announce_interrupted(runtime: Runtime, run_id: int) -> None:
    """Alert, in the background, that a dead worker's run was marked interrupted."""

    def send() -> None:
        recorder = RunRecorder(runtime.sessions, run_id, threading.Event())
        try:
            with runtime.sessions() as session:
                run = session.get_one(Run, run_id)
                job = session.get(Job, run.job_id) if run.job_id is not None else None
                edges = RunEdges.load(runtime, recorder, run, job, TASKS[run.kind])
                outcome = Outcome(RunStatus(run.status), run.error)
            edges.announce_end(outcome)
        except Exception:  # noqa: BLE001 - recovery goes on whatever alerts do
            logger.exception("could not alert about interrupted run %s", run_id)

    threading.Thread(target=send, daemon=True, name="notify").start()
