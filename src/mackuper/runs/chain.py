"""Incremental chains in the database: which point the next backup builds on, and
recording a new point (issue 17; the decisions are core/chain.py's).

A point can be built on only when its run succeeded and every archive of its chain
is stored, and not found damaged by a verification, at every destination of the job;
otherwise the next run is a full, and its log says why.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mackuper.core.chain import BackupMode, Point, decide
from mackuper.destinations.base import Destination
from mackuper.models import Artifact, ArtifactState, ChainPoint, ChainState, Job, Run, RunStatus
from mackuper.pipeline.incremental import ChainPlan, state_of
from mackuper.restore.errors import RestoreError
from mackuper.restore.manifest import manifest_files, read_manifest, unsealed
from mackuper.restore.stored import decryption_keys
from mackuper.runtime import Runtime

GOOD = {RunStatus.SUCCESS.value, RunStatus.WARNING.value}

ManifestFiles = Callable[[Artifact], list[dict[str, Any]] | None]
"""Reads the file list of an artifact's manifest (None when it cannot): to rebuild a
lost change-detection state."""


def plan_chain(
    session: Session, job: Job, now: datetime, manifest_files: ManifestFiles
) -> ChainPlan | None:
    """How the next backup of `job` extends its chain; None for a job making fulls."""
    mode = BackupMode.from_options(job.options)
    if not mode.incremental:
        return None
    base, previous = _base(session, job, manifest_files)
    decision = decide(mode, base, now)
    if decision.full or base is None:
        return ChainPlan(level=0, reason=decision.reason)
    return ChainPlan(
        level=base.level + 1,
        earlier=base.archives,
        previous=previous,
        reason=decision.reason,
    )


def _base(
    session: Session, job: Job, manifest_files: ManifestFiles
) -> tuple[Point | None, dict[str, dict[str, Any]]]:
    """The newest point of the job's chain with its state, and why it is broken if it is."""
    newest = session.scalars(
        select(ChainPoint)
        .join(Run, Run.id == ChainPoint.run_id)
        .where(ChainPoint.job_id == job.id, Run.status.in_(GOOD))
        .order_by(ChainPoint.run_id.desc())
        .limit(1)
    ).first()
    if newest is None:
        return None, {}
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
        broken=_broken(session, job, newest, points, full),
    )
    if point.broken:
        return point, {}
    state = _state(session, job, newest, manifest_files)
    if state is None:
        unreadable = f"the file list of {newest.archive_name} cannot be read"
        return replace(point, broken=unreadable), {}
    return point, state


def _broken(
    session: Session,
    job: Job,
    newest: ChainPoint,
    points: dict[int, ChainPoint],
    full: Run | None,
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
    return None


def _state(
    session: Session, job: Job, newest: ChainPoint, manifest_files: ManifestFiles
) -> dict[str, dict[str, Any]] | None:
    """The change-detection state of `newest`: the database's, or rebuilt from its manifest."""
    row = session.get(ChainState, job.id)
    if row is not None and row.run_id == newest.run_id:
        loaded: dict[str, dict[str, Any]] = json.loads(zlib.decompress(row.state))
        return loaded
    for artifact in session.scalars(
        select(Artifact).where(
            Artifact.run_id == newest.run_id, Artifact.state == ArtifactState.STORED.value
        )
    ).all():
        files = manifest_files(artifact)
        if files is not None:
            return state_of(files, newest.archive_name)
    return None


def record_point(
    session: Session,
    job_id: int,
    run_id: int,
    plan: ChainPlan,
    chain: dict[str, Any],
    files: list[dict[str, Any]],
) -> None:
    """Add the point a backup made and keep its file list for the next run's comparison."""
    earlier: list[int] = []
    if plan.level > 0:
        previous = session.scalars(
            select(ChainPoint)
            .where(ChainPoint.job_id == job_id, ChainPoint.archive_name == chain["previous"])
            .order_by(ChainPoint.run_id.desc())
            .limit(1)
        ).first()
        earlier = list(previous.needs) if previous is not None else []
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
    document = zlib.compress(json.dumps(state_of(files, name), separators=(",", ":")).encode(), 6)
    row = session.get(ChainState, job_id)
    if row is None:
        session.add(ChainState(job_id=job_id, run_id=run_id, archive_name=name, state=document))
    else:
        row.run_id, row.archive_name, row.state = run_id, name, document


def manifest_reader(
    runtime: Runtime, job: Job, destinations: Mapping[int, Destination]
) -> ManifestFiles:
    """Reads an artifact's manifest file list at one of the job's destinations, opening
    a sealed one with the job's stored key when it has one."""

    def read(artifact: Artifact) -> list[dict[str, Any]] | None:
        destination = destinations.get(artifact.destination_id)
        if destination is None:
            return None
        try:
            keys = decryption_keys(runtime, job, {})
            manifest = unsealed(read_manifest(destination, artifact.key), keys)
        except RestoreError:
            return None
        return manifest_files(manifest) if isinstance(manifest.get("files"), list) else None

    return read
