"""Runs API: history with filters, one run, its log, cancel; the dashboard."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, jsonify
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, lazyload
from werkzeug.wrappers import Response

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
    WorkerHeartbeat,
)
from mackuper.runs import health, retention
from mackuper.schemas.answers import CleanedHistory, Dashboard, LogAnswer, RunAnswer, RunsAnswer
from mackuper.schemas.api import CleanupBody, LogQuery, RunsQuery
from mackuper.web.database import get_db
from mackuper.web.forms import fail
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import iso, run_json

blueprint = Blueprint("runs", __name__, url_prefix="/api")

HEARTBEAT_FRESH = timedelta(seconds=30)
SUCCESS_RATE_WINDOW = timedelta(days=30)
_LISTED = lazyload(Run.job)
"""Lists serialize runs without their job (run_json uses job_name): skip the join."""


@blueprint.get("/runs")
@login_required
@operation("Run history, newest first, with filters", query=RunsQuery, responses={200: RunsAnswer})
def list_runs(query: RunsQuery) -> Response:
    statement = select(Run).options(_LISTED)
    if query.status is not None:
        statement = statement.where(Run.status == RunStatus(query.status))
    if query.kind is not None:
        statement = statement.where(Run.kind == RunKind(query.kind))
    session = get_db()
    zone = schedule.zone(installation.timezone(session))
    if query.from_date is not None:
        start = datetime.combine(query.from_date, time.min, tzinfo=zone)
        statement = statement.where(Run.created_at >= start.astimezone(UTC))
    if query.to_date is not None:
        end = datetime.combine(query.to_date + timedelta(days=1), time.min, tzinfo=zone)
        statement = statement.where(Run.created_at < end.astimezone(UTC))
    if query.job_id is not None:
        statement = statement.where(Run.job_id == query.job_id)
    if query.since is not None:
        statement = statement.where(Run.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(Run.created_at < query.until)
    page, per_page = query.page, query.per_page
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(
        statement.order_by(Run.created_at.desc(), Run.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return jsonify(runs=[run_json(run) for run in rows], total=total, page=page, per_page=per_page)


def _get(run_id: int) -> Run:
    run = get_db().get(Run, run_id)
    if run is None:
        fail("No such run.", 404)
    return run


@blueprint.get("/runs/<int:run_id>")
@login_required
@operation("One run", responses={200: RunAnswer})
def get_run(run_id: int) -> Response:
    return jsonify(run=run_json(_get(run_id)))


@blueprint.get("/runs/<int:run_id>/log")
@login_required
@operation("A run's log lines (1000 at most)", query=LogQuery, responses={200: LogAnswer})
def run_log(run_id: int, query: LogQuery) -> Response:
    """Log lines after id `after`, so a page can follow a running run."""
    run = _get(run_id)
    after = query.after
    lines = (
        get_db()
        .scalars(
            select(RunLog)
            .where(RunLog.run_id == run_id, RunLog.id > after)
            .order_by(RunLog.id)
            .limit(1000)
        )
        .all()
    )
    return jsonify(
        status=run.status,
        lines=[
            {"id": line.id, "at": iso(line.at), "level": line.level, "message": line.message}
            for line in lines
        ],
    )


@blueprint.post("/runs/<int:run_id>/cancel")
@login_required
@operation("Cancel a queued or running run", responses={200: RunAnswer})
def cancel_run(run_id: int) -> Response:
    session = get_db()
    run = _get(run_id)
    queued = changed_rows(
        session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.QUEUED.value)
            .values(
                status=RunStatus.CANCELLED.value,
                finished_at=datetime.now(UTC),
                error="cancelled by a user before it started",
            )
        )
    )
    if not queued:
        if run.status != RunStatus.RUNNING.value:
            session.rollback()
            fail(f"The run has already ended ({run.status}).", 409)
        session.execute(update(Run).where(Run.id == run_id).values(cancel_requested=True))
    session.commit()
    session.refresh(run)
    return jsonify(run=run_json(run))


_settled_good_runs: dict[str, tuple[date, int]] = {}
"""Per database: good runs created before yesterday, counted once a day per process."""


def _good_runs(session: Session, now: datetime) -> int:
    """All successful and warning backup runs ever made (restores and verifications aside).

    Counting 100,000 runs on every dashboard poll is most of its time, and runs
    from before yesterday no longer change (history cleanup only removes runs,
    so the count is at worst a day too high), so that part is counted once a day.
    """
    statuses = [RunStatus.SUCCESS.value, RunStatus.WARNING.value]
    today = now.astimezone(UTC).date()
    cutoff = datetime.combine(today - timedelta(days=1), time.min, tzinfo=UTC)
    key = str(session.get_bind().engine.url)
    cached = _settled_good_runs.get(key)
    if cached is None or cached[0] != today:
        settled = session.scalar(
            select(func.count()).where(
                Run.kind == RunKind.BACKUP, Run.status.in_(statuses), Run.created_at < cutoff
            )
        )
        cached = _settled_good_runs[key] = (today, settled or 0)
    fresh = session.scalar(
        select(func.count()).where(
            Run.kind == RunKind.BACKUP, Run.status.in_(statuses), Run.created_at >= cutoff
        )
    )
    return cached[1] + (fresh or 0)


@blueprint.get("/dashboard")
@login_required
@operation("The dashboard's figures, recent and running runs", responses={200: Dashboard})
def dashboard() -> Response:
    session = get_db()
    now = datetime.now(UTC)
    zone = installation.timezone(session)
    good_statuses = [RunStatus.SUCCESS.value, RunStatus.WARNING.value]
    # The rate covers recent runs only: it says how things go now, and it reads a
    # small index range instead of every run ever made.
    counts: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(Run.status, func.count())
            .where(
                Run.status.in_([*good_statuses, RunStatus.FAILED.value]),
                Run.created_at >= now - SUCCESS_RATE_WINDOW,
                Run.kind == RunKind.BACKUP,  # restores and verifications are not backups
            )
            .group_by(Run.status)
        )
    }
    finished = sum(counts.values())
    recent_good = sum(counts.get(status, 0) for status in good_statuses)
    good = _good_runs(session, now)
    last = session.scalars(
        select(Run)
        .options(_LISTED)
        .where(
            Run.finished_at.is_not(None),
            Run.status != RunStatus.SKIPPED.value,
            Run.kind == RunKind.BACKUP,
        )
        .order_by(Run.finished_at.desc())
        .limit(1)
    ).first()
    beat = session.scalar(select(func.max(WorkerHeartbeat.seen_at)))
    recent = session.scalars(
        select(Run).options(_LISTED).order_by(Run.created_at.desc(), Run.id.desc()).limit(10)
    ).all()
    running = session.scalars(
        select(Run)
        .options(_LISTED)
        .where(Run.status == RunStatus.RUNNING.value)
        .order_by(Run.started_at)
    ).all()
    stored = session.execute(
        select(func.count(), func.coalesce(func.sum(Artifact.size), 0)).where(
            Artifact.state == ArtifactState.STORED.value
        )
    ).one()
    return jsonify(
        total_jobs=session.scalar(select(func.count()).select_from(Job)) or 0,
        active_jobs=session.scalar(
            select(func.count()).select_from(Job).where(Job.enabled.is_(True))
        )
        or 0,
        last_backup=(
            {"run_id": last.id, "status": last.status, "finished_at": iso(last.finished_at)}
            if last
            else None
        ),
        scheduler={
            "running": beat is not None and now - beat <= HEARTBEAT_FRESH,
            "last_heartbeat": iso(beat),
        },
        success_rate=round(100 * recent_good / finished, 1) if finished else None,
        success_rate_days=SUCCESS_RATE_WINDOW.days,
        total_backups=good,
        stored_archives=stored[0],
        total_size=int(stored[1] or 0),
        timezone=zone,
        attention=[item.as_dict() for item in health.needs_attention(session, now, zone)],
        recent=[run_json(run) for run in recent],
        running=[run_json(run) for run in running],
    )


@blueprint.post("/runs/cleanup")
@login_required
@operation("Remove old runs from the history", body=CleanupBody, responses={200: CleanedHistory})
def clean_history(body: CleanupBody) -> Response:
    """Remove runs older than `days` (30 or more); runs of stored archives stay."""
    days = body.days
    low, high = installation.MIN_HISTORY_DAYS, installation.MAX_HISTORY_DAYS
    if not low <= days <= high:
        fail(f"Give days as a whole number from {low} to {high}.", 422)
    session = get_db()
    removed = retention.clean_history(session, datetime.now(UTC), days)
    session.commit()
    return jsonify(removed=removed, days=days)
