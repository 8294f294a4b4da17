"""Which queued run a worker takes next, where a queued run stands, and what it waits for.

Runs wait in two lanes. Backups share the installation's concurrency setting;
restores and verifications have one slot of their own beside it, so a person's
restore never waits behind a night of queued backups. In that lane restores go
before verifications (someone is waiting for a restore; most verifications come
from the verify schedule), then first come, first served, as in the backup lane.

A run that names a worker label (its job's files are on one machine) is taken
only by a worker carrying that label; a run whose job already has a running run
is passed over, so it does not hold up the runs behind it.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from mackuper.models import Job, Run, RunKind, RunStatus, WorkerHeartbeat

RESTORE_SLOTS = 1
"""Restores and verifications running at once, beside the backups."""
WORKER_FRESH = timedelta(seconds=30)
"""A worker whose heartbeat is older than this counts as gone."""


class Lane(enum.Enum):
    BACKUPS = "backups"
    RESTORES = "restores and verifications"

    @property
    def kinds(self) -> tuple[RunKind, ...]:
        if self is Lane.BACKUPS:
            return (RunKind.BACKUP,)
        return (RunKind.RESTORE, RunKind.VERIFY)

    def slots(self, limit: int) -> int:
        """Runs of this lane that may run at once under the concurrency setting `limit`."""
        return limit if self is Lane.BACKUPS else RESTORE_SLOTS


CLAIM_ORDER = (Lane.RESTORES, Lane.BACKUPS)
"""A worker fills the restore slot first: a restore and a backup found in one look
start in that order."""


def lane_of(kind: RunKind) -> Lane:
    return Lane.BACKUPS if kind is RunKind.BACKUP else Lane.RESTORES


def required_label(kind: RunKind, job: Job | None, details: Mapping[str, Any]) -> str | None:
    """The label a worker needs to run a new run of `kind`, or None: any worker.

    A backup reads the job's files, a restore into a local directory writes beside
    them, and one into a volume talks to the engine the job's backups read (Settings
    may name a socket that is another engine on another machine); a verification and
    a restore to an SSH host or a database only need the storage.
    """
    if job is None or kind is RunKind.VERIFY:
        return None
    if kind is RunKind.RESTORE and (details.get("target") or {}).get("kind") not in {
        "local",
        "volume",
    }:
        return None
    return job.worker_label


def _rank() -> ColumnElement[int]:
    return case((Run.kind == RunKind.RESTORE, 0), else_=1)


def running_count(session: Session, lane: Lane) -> int:
    """Runs of `lane` running now, on every worker (the limit is the installation's)."""
    count = session.scalar(
        select(func.count()).where(Run.status == RunStatus.RUNNING, Run.kind.in_(lane.kinds))
    )
    return count or 0


def label_allows(labels: Collection[str] | None) -> ColumnElement[bool]:
    """Runs a worker carrying `labels` may take (None: any run, as the CLI may)."""
    if labels is None:
        return true()
    return or_(Run.worker_label.is_(None), Run.worker_label.in_(sorted(labels)))


def job_busy() -> ColumnElement[bool]:
    """Another run of `Run`'s job is running, or has ended and is still running its
    post-command and retention (`Run.settling`): `Run` must wait."""
    other = aliased(Run)
    return (
        select(other.id)
        .where(or_(other.status == RunStatus.RUNNING, other.settling), other.job_id == Run.job_id)
        .exists()
    )


def next_runs(session: Session, lane: Lane, labels: Collection[str], count: int) -> list[int]:
    """Up to `count` ids of queued runs of `lane` a worker with `labels` may start, in order."""
    order = (_rank(), Run.created_at, Run.id) if lane is Lane.RESTORES else (Run.created_at, Run.id)
    return list(
        session.scalars(
            select(Run.id)
            .where(
                Run.status == RunStatus.QUEUED,
                Run.kind.in_(lane.kinds),
                ~job_busy(),
                label_allows(labels),
            )
            .order_by(*order)
            .limit(count)
        )
    )


def position(session: Session, run: Run) -> int | None:
    """A queued run's place in its lane (1: next to start), or None when it is not queued.

    Counted in the order workers take runs; a run of a busy job or one waiting for
    a label may be passed over, so it is where the run stands, not a promise.
    """
    if run.status is not RunStatus.QUEUED:
        return None
    lane = lane_of(run.kind)
    earlier = or_(
        Run.created_at < run.created_at, and_(Run.created_at == run.created_at, Run.id < run.id)
    )
    if lane is Lane.RESTORES:
        rank = 0 if run.kind is RunKind.RESTORE else 1
        earlier = or_(_rank() < rank, and_(_rank() == rank, earlier))
    ahead = session.scalar(
        select(func.count()).where(
            Run.status == RunStatus.QUEUED, Run.kind.in_(lane.kinds), earlier
        )
    )
    return (ahead or 0) + 1


def live_labels(session: Session, now: datetime) -> set[str]:
    """The labels of the workers whose heartbeat is fresh."""
    beats = session.scalars(
        select(WorkerHeartbeat).where(WorkerHeartbeat.seen_at >= now - WORKER_FRESH)
    )
    return {label for beat in beats for label in beat.labels or []}


def waiting_for(run: Run, live: Iterable[str]) -> str | None:
    """Why a queued run cannot start on any live worker, or None."""
    if run.status is not RunStatus.QUEUED or run.worker_label is None:
        return None
    if run.worker_label in set(live):
        return None
    return (
        f"Waiting for a worker labelled {run.worker_label!r}: no running worker carries"
        " that label. Start one with MACKUPER_WORKER_LABELS, or change the job's worker."
    )
