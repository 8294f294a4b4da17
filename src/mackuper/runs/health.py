"""A job's health, judged from its backup runs only, and what needs a person.

A restore or a verification of last week's archive says nothing about whether last
night's backup worked, so neither ever makes a job look healthy: the Jobs page,
the dashboard, the metrics and "Needs attention" all read a job's state from the
backup runs chosen here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mackuper.core import schedule
from mackuper.models import Artifact, ArtifactState, Destination, Job, Run, RunKind, RunStatus

JUDGED = (
    RunStatus.SUCCESS.value,
    RunStatus.WARNING.value,
    RunStatus.FAILED.value,
    RunStatus.INTERRUPTED.value,
)
"""The outcomes that say how a backup went (a cancelled or skipped one says nothing)."""
GOOD = (RunStatus.SUCCESS.value, RunStatus.WARNING.value)
SHOWN = tuple(status.value for status in RunStatus if status is not RunStatus.SKIPPED)
"""What a job's "last backup" may be: a skipped tick is not a backup that happened."""
EVERY_DESTINATION_FAILED = "every destination failed"
"""How a backup's error begins when no destination could store it (pipeline.run)."""
OVERDUE_SLACK = timedelta(hours=1)
"""A backup is overdue when none went well within this long after it was due: time for
the tick to start and for an ordinary backup to finish."""


def latest_runs(session: Session, kind: RunKind, statuses: Iterable[str]) -> dict[int, Run]:
    """The newest run of `kind` of each job among `statuses`, by job id."""
    newest = (
        select(Run.job_id, func.max(Run.id).label("run_id"))
        .where(Run.kind == kind, Run.status.in_(list(statuses)), Run.job_id.is_not(None))
        .group_by(Run.job_id)
        .subquery()
    )
    rows = session.scalars(select(Run).join(newest, Run.id == newest.c.run_id)).all()
    return {run.job_id: run for run in rows if run.job_id is not None}


def latest_backups(session: Session, statuses: Iterable[str]) -> dict[int, Run]:
    """The newest backup run of each job among `statuses`, by job id."""
    return latest_runs(session, RunKind.BACKUP, statuses)


def due_since(
    cron: str, zone: str, last_good: datetime | None, created: datetime, now: datetime
) -> datetime | None:
    """When a backup fell due that has not happened yet, if that was over OVERDUE_SLACK ago.

    The first fire time after the last good backup (or the job's creation) is the
    one that should have made a newer one. ScheduleError for an unusable cron.
    """
    since = last_good if last_good is not None and last_good > created else created
    fires = schedule.next_fire_times(cron, zone, since, 1)
    if fires and fires[0] + OVERDUE_SLACK < now:
        return fires[0]
    return None


@dataclass(frozen=True)
class Attention:
    """One thing on the dashboard that needs a person, with where to look."""

    kind: str
    """backup_failed, backup_warning, overdue, destination_failing or verify_failed."""
    message: str
    job_id: int | None = None
    job_name: str | None = None
    destination_id: int | None = None
    run_id: int | None = None
    at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        answer = asdict(self)
        answer["at"] = self.at.isoformat() if self.at else None
        return answer


def needs_attention(session: Session, now: datetime, default_zone: str) -> list[Attention]:
    """Failed or warned last backups, overdue jobs, failing destinations and verifications.

    A job appears once for its backups: a failed last backup says more than "overdue".
    """
    jobs = {job.id: job for job in session.scalars(select(Job).order_by(Job.name))}
    last = latest_backups(session, JUDGED)
    good = latest_backups(session, GOOD)
    items: list[Attention] = []
    for job_id, job in jobs.items():
        run = last.get(job_id)
        if run is not None and run.status is not RunStatus.SUCCESS:
            kind = "backup_warning" if run.status is RunStatus.WARNING else "backup_failed"
            word = {"warning": "ended with a warning", "interrupted": "was interrupted"}.get(
                run.status.value, "failed"
            )
            items.append(
                Attention(
                    kind,
                    f"The last backup {word}: {run.error or 'see its log'}",
                    job_id,
                    job.name,
                    run_id=run.id,
                    at=run.finished_at or run.created_at,
                )
            )
            continue
        if not (job.enabled and job.schedule):
            continue
        latest_good = good.get(job_id)
        started = (latest_good.scheduled_for or latest_good.created_at) if latest_good else None
        try:
            zone = job.timezone or default_zone
            due = due_since(job.schedule, zone, started, job.created_at, now)
        except schedule.ScheduleError:
            continue
        if due is not None:
            items.append(
                Attention(
                    "overdue",
                    "No backup since one was due; check that a worker that can run it is up.",
                    job_id,
                    job.name,
                    run_id=latest_good.id if latest_good else None,
                    at=due,
                )
            )
    items += _failing_destinations(session)
    for job_id, run in latest_runs(session, RunKind.VERIFY, JUDGED).items():
        if run.status is RunStatus.SUCCESS:
            continue
        items.append(
            Attention(
                "verify_failed",
                f"A verification failed: {run.error or 'see its log'}",
                job_id,
                run.job_name,
                run_id=run.id,
                at=run.finished_at or run.created_at,
            )
        )
    return items


def _failing_destinations(session: Session) -> list[Attention]:
    """Destinations whose newest archive was never stored because writing there failed.

    The app keeps no separate record of destination checks; a backup's attempt to
    write is the check. A discarded archive never got a size, unlike one that
    retention deleted after it was stored; and it was the destination's fault when
    its run warned (other destinations stored the archive) or failed with every
    destination failing (not when the source failed and every writer was discarded).
    """
    newest = (
        select(Artifact.destination_id, func.max(Artifact.id).label("artifact_id"))
        .group_by(Artifact.destination_id)
        .subquery()
    )
    rows = session.execute(
        select(Artifact, Destination, Run)
        .join(newest, Artifact.id == newest.c.artifact_id)
        .join(Destination, Destination.id == Artifact.destination_id)
        .join(Run, Run.id == Artifact.run_id)
        .where(
            Artifact.state == ArtifactState.DELETED.value,
            Artifact.size.is_(None),
            (Run.status == RunStatus.WARNING.value)
            | (
                (Run.status == RunStatus.FAILED.value)
                & Run.error.startswith(EVERY_DESTINATION_FAILED)
            ),
        )
        .order_by(Destination.name)
    ).all()
    return [
        Attention(
            "destination_failing",
            f"Destination {destination.name}: the last backup could not be written there"
            f" ({run.error or 'see the run log'})",
            run.job_id,
            run.job_name,
            destination.id,
            run.id,
            run.finished_at or artifact.created_at,
        )
        for artifact, destination, run in rows
    ]
