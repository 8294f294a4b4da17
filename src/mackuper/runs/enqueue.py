"""Every way a run is queued: "Run now", a job's schedule tick, a restore or verify
asked for by a person, and the installation's verify schedule.

A queued run is a row; a worker (or the CLI) claims it. Two workers may look at
the same schedule at once: a tick is taken only by the one whose conditional
UPDATE moves the schedule's anchor from the value it read (`take_due_tick`), and
a job's tick is also unique in the database, so it never runs twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mackuper import installation
from mackuper.core import schedule
from mackuper.db import changed_rows
from mackuper.models import (
    Artifact,
    ArtifactState,
    Job,
    Run,
    RunKind,
    RunLog,
    RunStatus,
    RunTrigger,
    Setting,
)
from mackuper.restore.request import RestoreRequest
from mackuper.restore.schedule import ANCHOR_KEY, GRACE, read_schedule
from mackuper.runs.queue import live_labels, required_label, waiting_for
from mackuper.runs.wake import commit_and_wake
from mackuper.runtime import Runtime

logger = logging.getLogger(__name__)

MoveAnchor = Callable[[datetime], bool]
"""Move a schedule's anchor from the value read to the given one; False if someone else did."""


def take_due_tick(
    cron: str, zone: str, anchor: datetime, now: datetime, grace: timedelta, move: MoveAnchor
) -> datetime | None:
    """The tick to run now, or None; moves the anchor past it first (the caller commits).

    None also when another process moved the anchor first: that one runs the tick.
    Raises schedule.ScheduleError for an unusable cron expression or zone.
    """
    tick, new_anchor = schedule.due_tick(cron, zone, anchor, now, grace)
    if new_anchor == anchor or not move(new_anchor):
        return None
    return tick


# --- backups ------------------------------------------------------------------


def run_now(session: Session, job: Job, another: bool = False) -> tuple[Run, bool]:
    """Queue a backup of `job` asked for by a person, commit, and wake the workers.

    While a backup of the job is queued or running, that one comes back instead, with
    False: three clicks on "Run now" make one backup (`another` queues one all the
    same, for scripts that mean it). The job's row is written first so that two
    requests at once take turns (a row lock on PostgreSQL, the write lock on SQLite;
    callers end any read transaction first, so on SQLite no stale snapshot is upgraded).
    """
    session.execute(update(Job).where(Job.id == job.id).values(updated_at=Job.updated_at))
    going = session.scalars(
        select(Run)
        .where(
            Run.job_id == job.id,
            Run.kind == RunKind.BACKUP,
            Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]),
        )
        .order_by(Run.id)
        .limit(1)
    ).first()
    if going is not None and not another:
        session.commit()
        return going, False
    run = Run(
        job_id=job.id,
        job_name=job.name,
        kind=RunKind.BACKUP,
        trigger=RunTrigger.MANUAL,
        worker_label=required_label(RunKind.BACKUP, job, {}),
    )
    session.add(run)
    _log_if_stranded(session, run)
    commit_and_wake(session)
    return run, True


def _log_if_stranded(session: Session, run: Run) -> None:
    """Log on a new run which label it waits for when no live worker carries it (flushes)."""
    if run.worker_label is None:
        return
    session.flush()
    reason = waiting_for(run, live_labels(session, datetime.now(UTC)))
    if reason is not None:
        session.add(RunLog(run_id=run.id, level="warning", message=reason))


def relabel_queued(session: Session, job: Job) -> None:
    """Give the job's queued backups its current worker label (the caller commits)."""
    session.execute(
        update(Run)
        .where(Run.job_id == job.id, Run.kind == RunKind.BACKUP, Run.status == RunStatus.QUEUED)
        .values(worker_label=required_label(RunKind.BACKUP, job, {}))
    )


def fire_due_ticks(runtime: Runtime, now: datetime) -> None:
    """Queue the due schedule tick of every enabled job (at most once per tick)."""
    with runtime.sessions() as session:
        default_zone = installation.timezone(session)
        grace = installation.missed_tick_grace(session)
        jobs = session.scalars(
            select(Job).where(Job.enabled.is_(True), Job.schedule.is_not(None))
        ).all()
        for job in jobs:
            _fire_job(session, job, now, default_zone, grace)


def _fire_job(
    session: Session, job: Job, now: datetime, default_zone: str, grace: timedelta
) -> None:
    if job.schedule is None:
        return
    read = job.schedule_anchor
    unchanged = Job.schedule_anchor.is_(None) if read is None else Job.schedule_anchor == read

    def move(new_anchor: datetime) -> bool:
        statement = (
            update(Job).where(Job.id == job.id, unchanged).values(schedule_anchor=new_anchor)
        )
        return changed_rows(session.execute(statement)) == 1

    try:
        tick = take_due_tick(
            job.schedule, job.timezone or default_zone, read or job.created_at, now, grace, move
        )
    except schedule.ScheduleError as error:
        logger.warning("job %s has an unusable schedule: %s", job.name, error)
        return
    session.commit()
    if tick is not None:
        enqueue_tick(session, job, tick, now)


def enqueue_tick(session: Session, job: Job, tick: datetime, now: datetime) -> None:
    """Queue the tick's backup, or record it skipped while the job's last backup still goes."""
    busy = session.scalar(
        select(Run.id).where(
            Run.job_id == job.id,
            Run.kind == RunKind.BACKUP,  # a restore or verify of the job does not skip its backup
            Run.status.in_([RunStatus.RUNNING, RunStatus.QUEUED]),
        )
    )
    run = Run(
        job_id=job.id,
        job_name=job.name,
        kind=RunKind.BACKUP,
        trigger=RunTrigger.SCHEDULE,
        scheduled_for=tick,
        worker_label=required_label(RunKind.BACKUP, job, {}),
        status=RunStatus.SKIPPED if busy else RunStatus.QUEUED,
        error=f"skipped: run {busy} of this job was still going" if busy else None,
        created_at=now,
        finished_at=now if busy else None,
    )
    session.add(run)
    try:
        _log_if_stranded(session, run)
        session.commit()
    except IntegrityError:
        session.rollback()  # another worker made this tick's run


# --- restores and verifications -----------------------------------------------


def queue_restore(
    session: Session,
    runtime: Runtime,
    artifact: Artifact,
    request: RestoreRequest,
    trigger: RunTrigger,
    wake: bool = True,
) -> Run:
    """Queue a restore (or its dry run) of `artifact`, its secrets encrypted, and commit.

    `wake=False` leaves the workers asleep: the CLI claims its own run at once.
    """
    details = {**request.details, "artifact_id": artifact.id, "archive_key": artifact.key}
    if request.secrets:
        details["secrets_encrypted"] = runtime.secrets.encrypt(request.secrets)
    run = _artifact_run(session, artifact, RunKind.RESTORE, details, trigger)
    _log_if_stranded(session, run)
    _commit(session, wake)
    return run


def queue_verify(
    session: Session, artifact: Artifact, deep: bool, trigger: RunTrigger, wake: bool = True
) -> Run:
    """Queue a verification of `artifact`, and commit (waking the workers unless told not to)."""
    run = _verify_run(session, artifact, deep, trigger)
    _commit(session, wake)
    return run


def _commit(session: Session, wake: bool) -> None:
    if wake:
        commit_and_wake(session)
    else:
        session.commit()


def _verify_run(session: Session, artifact: Artifact, deep: bool, trigger: RunTrigger) -> Run:
    details = {"artifact_id": artifact.id, "archive_key": artifact.key, "deep": deep}
    return _artifact_run(session, artifact, RunKind.VERIFY, details, trigger)


def _artifact_run(
    session: Session,
    artifact: Artifact,
    kind: RunKind,
    details: dict[str, Any],
    trigger: RunTrigger,
) -> Run:
    """A queued run that reads `artifact` (added to the session, not committed)."""
    job = session.get(Job, artifact.job_id) if artifact.job_id is not None else None
    run = Run(
        job_id=artifact.job_id,
        job_name=artifact.run.job_name if job is None else job.name,
        kind=kind,
        trigger=trigger,
        archive_name=artifact.key.rsplit("/", 1)[-1],
        details=details,
        worker_label=required_label(kind, job, details),
    )
    session.add(run)
    return run


def enqueue_due_verifications(runtime: Runtime, now: datetime) -> int:
    """Queue the verify runs of a due verify-schedule tick (at most once); returns how many.

    The tick's runs and the anchor's move commit together: there is no unique row
    per verify tick, so the anchor alone decides who queues them.
    """
    with runtime.sessions() as session:
        wanted = read_schedule(session)
        if not wanted["cron"]:
            return 0
        anchor_row = session.get(Setting, ANCHOR_KEY)
        if anchor_row is None:
            session.add(Setting(key=ANCHOR_KEY, value=now.astimezone(UTC).isoformat()))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
            return 0
        read = anchor_row.value

        def move(new_anchor: datetime) -> bool:
            statement = (
                update(Setting)
                .where(Setting.key == ANCHOR_KEY, Setting.value == read)
                .values(value=new_anchor.isoformat())
            )
            return changed_rows(session.execute(statement)) == 1

        try:
            tick = take_due_tick(
                wanted["cron"],
                installation.timezone(session),
                datetime.fromisoformat(read),
                now,
                GRACE,
                move,
            )
        except (ValueError, schedule.ScheduleError):
            return 0
        count = _verify_newest(session, bool(wanted["deep"])) if tick is not None else 0
        session.commit()
        return count


def _verify_newest(session: Session, deep: bool) -> int:
    """Queue a verification of each enabled job's newest stored backup at each destination."""
    artifacts = session.scalars(
        select(Artifact)
        .join(Job, Job.id == Artifact.job_id)
        .where(Artifact.state == ArtifactState.STORED.value, Job.enabled.is_(True))
        .order_by(Artifact.created_at.desc(), Artifact.id.desc())
    )
    seen: set[tuple[int | None, int]] = set()
    for artifact in artifacts:
        pair = (artifact.job_id, artifact.destination_id)
        if pair in seen:
            continue
        seen.add(pair)
        _verify_run(session, artifact, deep, RunTrigger.SCHEDULE)
    return len(seen)
