"""Read-only helpers for the pages: schedules in words, next runs, a 30-day chart, ETAs.

Kept apart from the CRUD APIs so the pages can grow without touching them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, jsonify
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from mackuper.core import schedule
from mackuper.installation import timezone as installation_timezone
from mackuper.models import Artifact, Job, Run, RunKind, RunStatus, WorkerHeartbeat
from mackuper.runs import health
from mackuper.runs.queue import WORKER_FRESH
from mackuper.schemas.answers import Chart, Estimate, HeaderStatus, JobsOverview, WorkersAnswer
from mackuper.web.database import get_db
from mackuper.web.operations import operation
from mackuper.web.runs import HEARTBEAT_FRESH
from mackuper.web.security import login_required

blueprint = Blueprint("ui_api", __name__, url_prefix="/api/ui")

CHART_DAYS = 30
GOOD = (RunStatus.SUCCESS.value, RunStatus.WARNING.value)


@blueprint.get("/status")
@login_required
@operation(
    "For the header on every page: is a worker alive, how many runs are going",
    responses={200: HeaderStatus},
)
def status() -> Response:
    """For the header on every page: is a worker alive, and how many runs are going."""
    session = get_db()
    beat = session.scalar(select(func.max(WorkerHeartbeat.seen_at)))
    alive = beat is not None and datetime.now(UTC) - _aware(beat) <= HEARTBEAT_FRESH
    running = session.scalar(
        select(func.count()).select_from(Run).where(Run.status == RunStatus.RUNNING.value)
    )
    return jsonify(scheduler_running=alive, running=running or 0)


@blueprint.get("/jobs")
@login_required
@operation(
    "Per job: the schedule in words, the next run and the last backup run",
    responses={200: JobsOverview},
)
def jobs_overview() -> Response:
    """Per job: the schedule in words with its time zone, the next run, the last backup."""
    session = get_db()
    default_zone = installation_timezone(session)
    now = datetime.now(UTC)
    result = {}
    # Backups only: a verify or restore that went well says nothing about the job's backups.
    last_backups = health.latest_backups(session, health.SHOWN)
    for job in session.scalars(select(Job)):
        zone = job.timezone or default_zone
        next_run = None
        words = "manual only"
        if job.schedule:
            words = f"{schedule.describe(job.schedule)}, {zone}"
            if job.enabled:
                try:
                    times = schedule.next_fire_times(job.schedule, zone, now, 1)
                except schedule.ScheduleError:
                    times = []
                next_run = times[0].isoformat() if times else None
        last = last_backups.get(job.id)
        result[str(job.id)] = {
            "schedule_text": words,
            "timezone": zone,
            "next_run": next_run,
            "last_status": last.status if last else None,
            "last_run_id": last.id if last else None,
            "last_at": (last.finished_at or last.created_at).isoformat() if last else None,
        }
    return jsonify(jobs=result)


@blueprint.get("/workers")
@login_required
@operation("The live workers and their labels, for the job form", responses={200: WorkersAnswer})
def workers() -> Response:
    """Workers whose heartbeat is fresh, with their labels; `labels` is every label once."""
    beats = get_db().scalars(
        select(WorkerHeartbeat)
        .where(WorkerHeartbeat.seen_at >= datetime.now(UTC) - WORKER_FRESH)
        .order_by(WorkerHeartbeat.hostname, WorkerHeartbeat.started_at)
    )
    live = [
        {
            "hostname": beat.hostname,
            "labels": list(beat.labels or []),
            "seen_at": _aware(beat.seen_at).isoformat(),
        }
        for beat in beats
    ]
    labels = sorted({label for worker in live for label in worker["labels"]})
    return jsonify(workers=live, labels=labels)


def _aware(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


@blueprint.get("/chart")
@login_required
@operation("Bytes written and time spent per day over the last 30 days", responses={200: Chart})
def chart() -> Response:
    """Size written and time spent per day by good backups over the last 30 days."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=CHART_DAYS - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    rows = get_db().execute(
        select(Run.started_at, Run.finished_at, Run.bytes_written).where(
            Run.kind == RunKind.BACKUP,  # the chart says what backing up costs
            Run.status.in_(GOOD),
            Run.finished_at.is_not(None),
            Run.finished_at >= start,
        )
    )
    days: dict[date, list[float]] = {first + timedelta(days=i): [0, 0] for i in range(CHART_DAYS)}
    for started_at, finished_at, written in rows:
        if finished_at is None:
            continue
        moment = _aware(finished_at)
        bucket = days.get(moment.date())
        if bucket is not None:
            bucket[0] += written or 0
            bucket[1] += (moment - _aware(started_at)).total_seconds() if started_at else 0
    return jsonify(
        days=[
            {"date": day.isoformat(), "bytes": int(size), "seconds": round(seconds)}
            for day, (size, seconds) in days.items()
        ]
    )


@blueprint.get("/runs/<int:run_id>/estimate")
@login_required
@operation("What the job's last good run read, for a running run's ETA", responses={200: Estimate})
def estimate(run_id: int) -> Response:
    """What a running backup will read, so it can show a percentage and ETA: its own
    count of the source when that is done, else what the job's last good backup read.

    A full restore reads its archive once from start to end: its size is the
    estimate (a selection reads only some of it, so it gets none).
    """
    session = get_db()
    run = session.get(Run, run_id)
    if run is not None and run.kind == RunKind.RESTORE.value:
        details = run.details or {}
        artifact_id = details.get("artifact_id")
        artifact = session.get(Artifact, artifact_id) if isinstance(artifact_id, int) else None
        whole = not details.get("paths")
        size = artifact.size if artifact is not None and whole else None
        return jsonify(expected_bytes=size, expected_seconds=None)
    # This run's own count of its source (runs/source_count.py), once it is done.
    counted = (run.details or {}).get("source_total") if run is not None else None
    if isinstance(counted, dict) and isinstance(counted.get("bytes"), int):
        return jsonify(expected_bytes=counted["bytes"], expected_seconds=None)
    previous = None
    if run is not None and run.job_id is not None:
        previous = session.scalars(
            select(Run)
            .where(
                Run.job_id == run.job_id,
                Run.kind == RunKind.BACKUP,  # a verify's reading is no measure of a backup
                Run.status.in_(GOOD),
                Run.id != run.id,
            )
            .order_by(Run.finished_at.desc())
            .limit(1)
        ).first()
    return jsonify(
        expected_bytes=previous.bytes_read if previous else None,
        expected_seconds=previous.duration_seconds if previous else None,
    )
