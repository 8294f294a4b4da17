"""Incremental chains in the database: which point the next backup builds on, and
recording a new point (issue 17; the decisions are core/chain.py's).

A point can be built on only when its run succeeded and every archive of its chain
is stored, and not found damaged by a verification, at every destination of the job;
otherwise the next run is a full, and its log says why.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from mackuper.core.chain import BackupMode, Point, decide
from mackuper.core.snar import SnapshotError, check
from mackuper.destinations.base import Destination, DestinationError
from mackuper.models import Artifact, ArtifactState, ChainPoint, ChainState, Job, Run, RunStatus
from mackuper.pipeline.chainstate import PreviousPoint, read_state, state_of, write_state
from mackuper.pipeline.incremental import ChainPlan
from mackuper.restore.archives import StoredArchive
from mackuper.restore.chain import point_manifest
from mackuper.restore.errors import RestoreError
from mackuper.restore.manifest import manifest_files, read_manifest, unsealed
from mackuper.restore.stored import decryption_keys
from mackuper.runtime import Runtime

GOOD = {RunStatus.SUCCESS.value, RunStatus.WARNING.value}


class Storage(Protocol):
    """What the chain decision asks the job's destinations."""

    def files(self, artifact: Artifact) -> list[dict[str, Any]] | None:
        """The file list of the artifact's manifest, None when it cannot be read."""
        ...

    def missing(self, artifact: Artifact) -> bool:
        """Whether the artifact's archive is gone from its destination."""
        ...


def plan_chain(session: Session, job: Job, now: datetime, storage: Storage) -> ChainPlan | None:
    """How the next backup of `job` extends its chain; None for a job making fulls."""
    mode = BackupMode.from_options(job.options)
    if not mode.incremental:
        return None
    base, previous = _base(session, job, storage)
    try:
        plan = _extended(session, job, now, mode, base, previous)
    except BaseException:
        previous.close()
        raise
    if plan.previous is not previous:
        previous.close()  # a full compares with nothing
    return plan


def _extended(
    session: Session,
    job: Job,
    now: datetime,
    mode: BackupMode,
    base: Point | None,
    previous: PreviousPoint,
) -> ChainPlan:
    decision = decide(mode, base, now)
    remote = job.source_kind == "ssh"  # the remote GNU tar decides (core/snar.py)
    snapshot = b""
    if remote and not decision.full and base is not None:
        kept = remote_snapshot(session, job, base.run_id)
        if kept is None:
            reason = (
                f"GNU tar's snapshot of {base.archive_name} is not kept (lost, or that run"
                " could not read it back): this run starts a new full"
            )
            decision = replace(decision, full=True, reason=reason)
        else:
            snapshot = kept
    if decision.full or base is None:
        return ChainPlan(level=0, reason=decision.reason, remote=remote, snapshot=snapshot)
    return ChainPlan(
        level=base.level + 1,
        earlier=base.archives,
        previous=previous,
        reason=decision.reason,
        needs=base.needs,
        remote=remote,
        snapshot=snapshot,
    )


def remote_snapshot(session: Session, job: Job, run_id: int) -> bytes | None:
    """The remote GNU tar's snapshot kept for the point of run `run_id`, or None."""
    row = session.get(ChainState, job.id)
    if row is None or row.run_id != run_id or not row.remote_snapshot:
        return None
    try:
        snapshot = zlib.decompress(row.remote_snapshot)
        check(snapshot)
    except (zlib.error, SnapshotError):
        return None
    return snapshot


def _base(session: Session, job: Job, storage: Storage) -> tuple[Point | None, PreviousPoint]:
    """The newest point of the job's chain with its state, and why it is broken if it is."""
    newest = session.scalars(
        select(ChainPoint)
        .join(Run, Run.id == ChainPoint.run_id)
        .where(ChainPoint.job_id == job.id, Run.status.in_(GOOD))
        .order_by(ChainPoint.run_id.desc())
        .limit(1)
    ).first()
    if newest is None:
        return None, PreviousPoint()
    points = {
        point.run_id: point
        for point in session.scalars(
            select(ChainPoint).where(ChainPoint.run_id.in_(newest.needs))
        ).all()
    }
    full = session.get(Run, newest.full_run_id)
    archives = tuple(
        points[run_id].archive_name if run_id in points else f"run {run_id}"
        for run_id in newest.needs
    )
    point = Point(
        run_id=newest.run_id,
        archive_name=newest.archive_name,
        level=newest.level,
        full_started_at=(full.started_at or full.created_at)
        if full
        else datetime.min.replace(tzinfo=UTC),
        archives=archives,
        needs=tuple(newest.needs),
        broken=_broken(session, job, newest, points, full, storage),
    )
    if point.broken:
        return point, PreviousPoint()
    state = _state(session, job, newest, storage)
    if state is None:
        unreadable = f"the file list of {newest.archive_name} cannot be read"
        return replace(point, broken=unreadable), PreviousPoint()
    return point, state


def _broken(
    session: Session,
    job: Job,
    newest: ChainPoint,
    points: dict[int, ChainPoint],
    full: Run | None,
    storage: Storage,
) -> str | None:
    if full is None or any(run_id not in points for run_id in newest.needs):
        return f"an earlier point of the chain of {newest.archive_name} is no longer recorded"
    statuses = {
        run_id: status
        for run_id, status in session.execute(
            select(Run.id, Run.status).where(Run.id.in_(newest.needs))
        ).all()
    }
    artifacts = session.scalars(select(Artifact).where(Artifact.run_id.in_(newest.needs))).all()
    for run_id in newest.needs:
        name = points[run_id].archive_name
        if str(statuses.get(run_id)) not in GOOD:
            return f"the backup that wrote {name} did not succeed"
        for destination in job.destinations:
            held = [
                artifact
                for artifact in artifacts
                if artifact.run_id == run_id and artifact.destination_id == destination.id
            ]
            if not any(artifact.state == ArtifactState.STORED.value for artifact in held):
                return f"{name} is not stored at {destination.name}"
            if all(artifact.verify_status == "failed" for artifact in held):
                return f"{name} at {destination.name} failed its verification"
            # The catalog may not know yet: a file removed by hand, a bucket emptied.
            stored = [item for item in held if item.state == ArtifactState.STORED.value]
            if all(storage.missing(artifact) for artifact in stored):
                return f"{name} is missing at {destination.name}"
    return None


def _state(
    session: Session, job: Job, newest: ChainPoint, storage: Storage
) -> PreviousPoint | None:
    """The change-detection state of `newest`: the database's, or rebuilt from its
    manifest when the database has none (or one that does not read back)."""
    row = session.get(ChainState, job.id)
    if row is not None and row.run_id == newest.run_id:
        with contextlib.suppress(ValueError):
            return read_state(row.state)
    for artifact in session.scalars(
        select(Artifact).where(
            Artifact.run_id == newest.run_id, Artifact.state == ArtifactState.STORED.value
        )
    ).all():
        files = storage.files(artifact)
        if files is not None:
            return state_of(files, newest.archive_name)
    return None


def record_point(
    session: Session,
    job_id: int,
    run_id: int,
    plan: ChainPlan,
    chain: dict[str, Any],
    files: Iterable[dict[str, Any]],
    snapshot: bytes | None = None,
) -> None:
    """Add the point a backup made and keep its file list for the next run's comparison
    (and, of a chain made by the remote GNU tar, its rewritten `snapshot`)."""
    earlier = list(plan.needs)
    name = str(chain["archives"][-1])
    session.add(
        ChainPoint(
            run_id=run_id,
            job_id=job_id,
            level=plan.level,
            full_run_id=earlier[0] if earlier else run_id,
            previous_run_id=earlier[-1] if earlier else None,
            archive_name=name,
            needs=[*earlier, run_id],
        )
    )
    compressed = _Compressed()
    write_state(files, name, compressed)
    document = compressed.finish()
    kept = zlib.compress(snapshot, 6) if snapshot else None
    row = session.get(ChainState, job_id)
    if row is None:
        session.add(
            ChainState(
                job_id=job_id,
                run_id=run_id,
                archive_name=name,
                state=document,
                remote_snapshot=kept,
            )
        )
    else:
        row.run_id, row.archive_name, row.state = run_id, name, document
        row.remote_snapshot = kept


class _Compressed:
    """What is written to it, zlib-compressed at level 6 as it comes (a stored state)."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(6)
        self._out = bytearray()

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        self._out += self._zlib.compress(data)

    def finish(self) -> bytes:
        self._out += self._zlib.flush()
        return bytes(self._out)


class DestinationStorage:
    """The job's built destinations, read with the job's stored key when it has one."""

    def __init__(self, runtime: Runtime, job: Job, destinations: Mapping[int, Destination]):
        self.runtime = runtime
        self.job = job
        self.destinations = destinations

    def files(self, artifact: Artifact) -> list[dict[str, Any]] | None:
        destination = self.destinations.get(artifact.destination_id)
        if destination is None:
            return None
        try:
            keys = decryption_keys(self.runtime, self.job, {})
            point = StoredArchive(destination, artifact.key, keys)
            manifest = point_manifest(
                point, unsealed(read_manifest(destination, artifact.key), keys)
            )
        except RestoreError:
            return None
        if manifest is None or not isinstance(manifest.get("files"), list):
            return None
        return manifest_files(manifest)

    def missing(self, artifact: Artifact) -> bool:
        """True only when the destination answers that the archive is not there: an
        outage does not break a chain (the backup itself then fails or retries)."""
        destination = self.destinations.get(artifact.destination_id)
        if destination is None:
            return False
        try:
            return destination.stat(artifact.key) is None
        except DestinationError:
            return False
