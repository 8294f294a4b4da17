"""Apply retention at every destination, clean old history, keep query statistics.

The decision is core.retention's pure function; this module gathers its input
from the database and carries it out: it deletes each archive and its manifest
at each destination, marks the artifacts deleted and logs it on the run. A point
of an incremental chain brings the runs it needs from its chain_points row, so the
archives a kept point needs are never deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import delete, exists, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from mackuper import installation
from mackuper.core import retention, schedule
from mackuper.core.naming import manifest_key
from mackuper.db import changed_rows
from mackuper.destinations import registry as destinations
from mackuper.destinations.base import Destination as Target
from mackuper.destinations.base import DestinationError, Lockable
from mackuper.models import (
    Artifact,
    ArtifactState,
    ChainPoint,
    Destination,
    Job,
    Run,
    RunKind,
    RunLog,
    RunStatus,
    RunTrigger,
)
from mackuper.secretbox import SecretBox

logger = logging.getLogger(__name__)

_REFERENCE_KEYS = ("run_id", "source_run_id", "backup_run_id", "artifact_id", "artifact_ids")
"""Keys in a running task's `details` that name the backup it reads."""


@dataclass(frozen=True)
class Preview:
    decisions: list[retention.Decision]
    artifacts: dict[int, list[Artifact]]
    """Run id -> its stored artifacts."""
    points: dict[int, ChainPoint]
    """Run id -> its place in an incremental chain (runs of full-only jobs have none)."""


def _in_use(session: Session) -> tuple[set[int], set[int]]:
    """Run ids and artifact ids that running or queued non-backup tasks read."""
    runs: set[int] = set()
    artifacts: set[int] = set()
    active = session.scalars(
        select(Run).where(
            Run.status.in_([RunStatus.RUNNING.value, RunStatus.QUEUED.value]),
            Run.kind != RunKind.BACKUP,
        )
    )
    for run in active:
        for key in _REFERENCE_KEYS:
            value = (run.details or {}).get(key)
            values = value if isinstance(value, list) else [value]
            numbers = {item for item in values if isinstance(item, int)}
            (artifacts if key.startswith("artifact") else runs).update(numbers)
    return runs, artifacts


def _zone(session: Session, job: Job) -> tzinfo:
    return schedule.zone(job.timezone or installation.timezone(session))


def _lock_days(destination: Destination) -> int:
    return int((destination.config or {}).get("lock_days") or 0)


def first_lock(
    session: Session, job: Job, destination: Destination, run_id: int, started: datetime
) -> datetime:
    """The retain-until date of a backup starting now at an Object Lock destination.

    What the job's policy promises a backup the moment it is made: the destination's
    minimum days and the policy's days (a GFS slot is promised only once its period is
    over; retention then extends the lock). A policy that no longer parses locks for
    the minimum only.
    """
    try:
        policy = retention.Policy.from_json(job.retention)
    except retention.RetentionError:
        policy = retention.Policy()
    backup = retention.Backup(id=run_id, finished_at=started, successful=True)
    promised = retention.guaranteed_until(
        [backup], policy, started, _zone(session, job), _lock_days(destination)
    )
    return promised[run_id]


def preview(
    session: Session, job: Job, now: datetime, policy: retention.Policy | None = None
) -> Preview:
    """What the job's retention policy (or `policy`, previewed unsaved) would keep and
    delete now, and why. Reads only."""
    if policy is None:
        policy = retention.Policy.from_json(job.retention)
    stored = session.scalars(
        select(Artifact)
        .join(Run, Run.id == Artifact.run_id)
        .where(Artifact.job_id == job.id, Artifact.state == ArtifactState.STORED.value)
    ).all()
    by_run: dict[int, list[Artifact]] = {}
    for artifact in stored:
        by_run.setdefault(artifact.run_id, []).append(artifact)
    used_runs, used_artifacts = _in_use(session)
    points = {
        point.run_id: point
        for point in session.scalars(select(ChainPoint).where(ChainPoint.job_id == job.id))
    }
    used_runs |= _built_on(session, job, points, by_run)
    backups = []
    for run_id, artifacts in by_run.items():
        run = artifacts[0].run
        point = points.get(run_id)
        backups.append(
            retention.Backup(
                id=run_id,
                finished_at=run.finished_at or run.created_at,
                successful=run.status == RunStatus.SUCCESS.value,
                in_use=run_id in used_runs or any(a.id in used_artifacts for a in artifacts),
                imported=run.trigger == RunTrigger.IMPORT,
                needs=_needs(point),
                # Only chain points: a full-only job's plan stays what it always was.
                damaged=point is not None
                and all(artifact.verify_status == "failed" for artifact in artifacts),
            )
        )
    decisions = retention.plan_retention(backups, policy, now, _zone(session, job))
    return Preview(decisions, by_run, points)


def _built_on(
    session: Session, job: Job, points: dict[int, ChainPoint], by_run: dict[int, list[Artifact]]
) -> set[int]:
    """The point a running backup of the job may be extending: the newest stored point
    whose run succeeded or warned, as runs/chain.py picks it. Kept while the backup runs,
    so the new point's chain cannot lose an archive under it."""
    if not points:
        return set()
    running = select(Run.id).where(
        Run.job_id == job.id, Run.kind == RunKind.BACKUP, Run.status == RunStatus.RUNNING.value
    )
    if session.scalar(running.limit(1)) is None:
        return set()
    good = (RunStatus.SUCCESS.value, RunStatus.WARNING.value)
    candidates = [
        run_id for run_id in points if run_id in by_run and by_run[run_id][0].run.status in good
    ]
    return {max(candidates)} if candidates else set()


def _needs(point: ChainPoint | None) -> frozenset[int]:
    """The other runs whose archives restoring this point reads (none for a full)."""
    if point is None:
        return frozenset()
    listed = point.needs if isinstance(point.needs, list) else []
    return frozenset(
        run_id for run_id in listed if isinstance(run_id, int) and run_id != point.run_id
    )


def locks_in_the_way(secrets: SecretBox, plan: Preview, now: datetime) -> dict[int, datetime]:
    """Run id -> the date its lock runs to, for the backups the plan would delete whose
    archive is still locked (retention deletes them only after that date)."""
    targets: dict[int, Target | None] = {}
    found: dict[int, datetime] = {}
    for decision in plan.decisions:
        if decision.keep:
            continue
        for artifact in plan.artifacts[decision.backup.id]:
            target = _target(secrets, artifact.destination, targets)
            if not isinstance(target, Lockable):
                continue
            try:
                lock = target.lock_of(artifact.key)
            except DestinationError:
                continue
            if lock is not None and lock.until > now:
                run_id = decision.backup.id
                found[run_id] = max(lock.until, found.get(run_id, lock.until))
    return found


def apply_retention(
    sessions: sessionmaker[Session],
    secrets: SecretBox,
    job_id: int,
    now: datetime,
    triggered_by: int | None = None,
) -> int:
    """Delete what the job's policy does not keep; the number of artifacts deleted.

    Destination errors are logged and leave the artifact stored (tried again next
    time); they are never raised.
    """
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            return 0
        try:
            plan = preview(session, job, now)
        except (retention.RetentionError, schedule.ScheduleError) as error:
            logger.warning("retention of job %s skipped: %s", job.name, error)
            return 0
        targets: dict[int, Target | None] = {}
        _extend_locks(session, secrets, job, plan, now, targets, triggered_by)
        if job.anomaly_run_id is not None:
            if any(not decision.keep for decision in plan.decisions):
                message = (
                    f"retention deletes nothing for job {job.name}: backup run"
                    f" {job.anomaly_run_id} did not look like the ones before it (files"
                    " encrypted or wiped?) and awaits a person's acknowledgement"
                )
                _log(session, {triggered_by}, "warning", message)
            return 0
        deleted = 0
        for decision in plan.decisions:
            if decision.keep:
                continue
            for artifact in plan.artifacts[decision.backup.id]:
                deleted += _delete_artifact(session, secrets, artifact, now, triggered_by, targets)
        return deleted


def _target(
    secrets: SecretBox, destination: Destination, targets: dict[int, Target | None]
) -> Target | None:
    """The destination object (built once per sweep); None when it cannot be built."""
    if destination.id not in targets:
        try:
            targets[destination.id] = destinations.build(
                destination.kind, destination.config, secrets.decrypt(destination.secrets_encrypted)
            )
        except DestinationError:
            targets[destination.id] = None
    return targets[destination.id]


def _log(session: Session, run_ids: set[int | None], level: str, message: str) -> None:
    for run_id in run_ids - {None}:
        session.add(RunLog(run_id=run_id, level=level, message=message))
    session.commit()
    getattr(logger, level)("%s", message)


def _extend_locks(
    session: Session,
    secrets: SecretBox,
    job: Job,
    plan: Preview,
    now: datetime,
    targets: dict[int, Target | None],
    triggered_by: int | None,
) -> None:
    """Lengthen the locks of kept backups whose GFS slot now promises more than the lock
    they were stored with (their period is over, so the slot is theirs for good), and of
    backups that later incremental points need (kept as long as those are)."""
    try:
        policy = retention.Policy.from_json(job.retention)
    except retention.RetentionError:
        return
    backups = [decision.backup for decision in plan.decisions]
    chained = any(backup.needs for backup in backups)
    if not chained and not any(getattr(policy, f"keep_{name}") for name in retention.PERIODS):
        return  # the lock set at upload is all the policy promises
    zone = _zone(session, job)
    plain = retention.Policy(keep_days=policy.keep_days)
    # What the lock set at upload covered: the backup alone, before later points needed it.
    alone = [replace(backup, needs=frozenset()) for backup in backups]
    promised: dict[int, tuple[dict[int, datetime], dict[int, datetime]]] = {}
    for decision in plan.decisions:
        if not decision.keep:
            continue
        for artifact in plan.artifacts[decision.backup.id]:
            target = _target(secrets, artifact.destination, targets)
            if not isinstance(target, Lockable) or not target.lock_mode:
                continue
            days = _lock_days(artifact.destination)
            if days not in promised:  # once per minimum, not once per archive
                promised[days] = (
                    retention.guaranteed_until(backups, policy, now, zone, days),
                    retention.guaranteed_until(alone, plain, now, zone, days),
                )
            until, first = (dates[artifact.run_id] for dates in promised[days])
            if until <= first or until <= now:
                continue
            try:
                lock = target.lock_of(artifact.key)
                if lock is not None and lock.until >= until:
                    continue
                target.extend_lock(artifact.key, until)
                target.extend_lock(manifest_key(artifact.key), until)
            except DestinationError as error:
                message = f"retention could not extend the lock of {artifact.key}: {error}"
                _log(session, {artifact.run_id, triggered_by}, "warning", message)
                continue
            message = (
                f"lock of {artifact.key} at {artifact.destination.name} extended to"
                f" {until:%Y-%m-%d %H:%M} UTC ({', '.join(decision.reasons)})"
            )
            _log(session, {artifact.run_id, triggered_by}, "info", message)


def _still_locked(target: Target | None, artifact: Artifact, now: datetime) -> str | None:
    """Why the archive cannot be deleted yet (its lock runs past `now`), or None."""
    if not isinstance(target, Lockable):
        return None
    try:
        lock = target.lock_of(artifact.key)
    except DestinationError:
        return None  # the delete itself says what is wrong
    if lock is None or lock.until <= now:
        return None
    return f"locked ({lock.mode.lower()} mode) until {lock.until:%Y-%m-%d %H:%M} UTC"


def _delete_artifact(
    session: Session,
    secrets: SecretBox,
    artifact: Artifact,
    now: datetime,
    triggered_by: int | None,
    targets: dict[int, Target | None] | None = None,
) -> int:
    # Claim the artifact first, so two workers never both delete (and log) it.
    claimed = changed_rows(
        session.execute(
            update(Artifact)
            .where(Artifact.id == artifact.id, Artifact.state == ArtifactState.STORED.value)
            .values(state=ArtifactState.DELETED.value, deleted_at=now)
        )
    )
    session.commit()
    if not claimed:
        return 0
    where = artifact.destination.name
    target = _target(secrets, artifact.destination, {} if targets is None else targets)
    if (locked := _still_locked(target, artifact, now)) is not None:
        session.execute(
            update(Artifact)
            .where(Artifact.id == artifact.id)
            .values(state=ArtifactState.STORED.value, deleted_at=None)
        )
        session.commit()
        message = f"retention keeps {artifact.key} at {where} for now: it is {locked}"
        _log(session, {triggered_by}, "info", message)
        return 0
    try:
        if target is None:
            target = destinations.build(
                artifact.destination.kind,
                artifact.destination.config,
                secrets.decrypt(artifact.destination.secrets_encrypted),
            )
        target.delete(artifact.key)
        target.delete(manifest_key(artifact.key))
    except DestinationError as error:
        session.execute(
            update(Artifact)
            .where(Artifact.id == artifact.id)
            .values(state=ArtifactState.STORED.value, deleted_at=None)
        )
        message = f"retention could not delete {artifact.key} at {where}: {error}"
        session.add(RunLog(run_id=artifact.run_id, level="warning", message=message))
        session.commit()
        logger.warning("%s", message)
        return 0
    message = f"retention deleted {artifact.key} and its manifest at {where}"
    session.add(RunLog(run_id=artifact.run_id, level="info", message=message))
    if triggered_by is not None and triggered_by != artifact.run_id:
        session.add(RunLog(run_id=triggered_by, level="info", message=message))
    session.commit()
    logger.info("%s", message)
    return 1


def delete_stored_backups(session: Session, secrets: SecretBox, job_id: int) -> tuple[int, int]:
    """Delete every stored archive (and manifest) of a job: (deleted, failed)."""
    stored = session.scalars(
        select(Artifact).where(
            Artifact.job_id == job_id, Artifact.state == ArtifactState.STORED.value
        )
    ).all()
    now = datetime.now(UTC)
    deleted = sum(_delete_artifact(session, secrets, artifact, now, None) for artifact in stored)
    return deleted, len(stored) - deleted


def apply_all(sessions: sessionmaker[Session], secrets: SecretBox, now: datetime) -> int:
    """The daily sweep: retention for every job that has a policy."""
    with sessions() as session:
        job_ids = [job.id for job in session.scalars(select(Job)) if job.retention]
    return sum(apply_retention(sessions, secrets, job_id, now) for job_id in job_ids)


def clean_history(session: Session, now: datetime, days: int) -> int:
    """Remove finished runs older than `days` (at least 30) that no stored archive needs.

    A run whose artifact is still stored (or pending) stays: it is that archive's
    record. Returns the number of runs removed; the caller commits.
    """
    if days < installation.MIN_HISTORY_DAYS:
        raise ValueError(f"history is kept at least {installation.MIN_HISTORY_DAYS} days")
    cutoff = now - timedelta(days=days)
    needed = exists().where(
        Artifact.run_id == Run.id,
        Artifact.state.in_([ArtifactState.STORED.value, ArtifactState.PENDING.value]),
    )
    doomed = select(Run.id).where(
        Run.created_at < cutoff,
        Run.status.not_in([RunStatus.RUNNING.value, RunStatus.QUEUED.value]),
        ~needed,
    )
    ids = list(session.scalars(doomed))
    removed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        session.execute(delete(RunLog).where(RunLog.run_id.in_(chunk)))
        session.execute(delete(Artifact).where(Artifact.run_id.in_(chunk)))
        removed += changed_rows(session.execute(delete(Run).where(Run.id.in_(chunk))))
    return removed


def refresh_statistics(session: Session) -> None:
    """Let the query planner know the history's size and spread.

    Without statistics SQLite may walk the status index for a job's history instead of
    the job's own index: 250 ms instead of 1 ms on 100,000 runs. PostgreSQL's
    autovacuum analyzes too, but only after enough changes; once a day is cheap.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA analysis_limit=1000"))
        session.execute(text("ANALYZE"))
    else:
        session.execute(text("ANALYZE runs"))
        session.execute(text("ANALYZE artifacts"))
