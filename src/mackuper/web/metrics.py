"""Prometheus metrics at /metrics, readable with a bearer token.

Off unless MACKUPER_METRICS_TOKEN is set; then `Authorization: Bearer <token>`
is required (the login guard does not apply, Prometheus has no session). Every
figure is read from the database at scrape time, so any web process answers the
same. Jobs are labelled by their storage name (`backup_job`), which never changes;
`mackuper_job_info` maps it to the display name.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import UTC, datetime

from flask import Blueprint, request
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from mackuper.models import Artifact, Destination, Job, Run, RunKind, RunStatus, WorkerHeartbeat
from mackuper.runs import health
from mackuper.web.database import get_db, runtime
from mackuper.web.runs import HEARTBEAT_FRESH

blueprint = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STORED_STATUSES = (RunStatus.SUCCESS.value, RunStatus.WARNING.value)
ENDED_STATUSES = (
    RunStatus.SUCCESS.value,
    RunStatus.WARNING.value,
    RunStatus.FAILED.value,
    RunStatus.INTERRUPTED.value,
)
FINAL_STATUSES = tuple(status.value for status in RunStatus if status.is_final)

Sample = tuple[dict[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    """Prometheus text format, one metric family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        suffix = "_total" if kind == "counter" else ""
        for labels, value in samples:
            rendered = ",".join(f'{key}="{_escape(text)}"' for key, text in labels.items())
            self.lines.append(
                f"{name}{suffix}{{{rendered}}} {value!r}"
                if rendered
                else f"{name}{suffix} {value!r}"
            )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _timestamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment else 0.0


def _authorised() -> Response | None:
    token = runtime().settings.metrics_token
    if token is None:
        return Response("Metrics are off; set MACKUPER_METRICS_TOKEN to turn them on.\n", 404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response(
            "Send the metrics token as: Authorization: Bearer <token>\n",
            401,
            headers={"WWW-Authenticate": 'Bearer realm="mackuper metrics"'},
        )
    return None


@blueprint.get("/metrics")
def metrics() -> Response:
    refusal = _authorised()
    if refusal is not None:
        return refusal
    session = get_db()
    now = datetime.now(UTC)
    jobs = session.scalars(select(Job).order_by(Job.slug)).all()
    slugs = {job.id: job.slug for job in jobs}
    # Backup runs only: a restore or verification never stands in for a backup.
    successes = health.latest_backups(session, (RunStatus.SUCCESS.value,))
    ended = health.latest_backups(session, ENDED_STATUSES)
    stored = health.latest_backups(session, STORED_STATUSES)
    counts = session.execute(
        select(Run.job_id, Run.status, func.count())
        .where(Run.kind == RunKind.BACKUP, Run.job_id.is_not(None), Run.status.in_(FINAL_STATUSES))
        .group_by(Run.job_id, Run.status)
    ).all()
    uploaded = session.execute(
        select(Destination.name, func.coalesce(func.sum(Artifact.size), 0))
        .join(Artifact, Artifact.destination_id == Destination.id, isouter=True)
        .group_by(Destination.id, Destination.name)
        .order_by(Destination.name)
    ).all()
    beat = session.scalar(select(func.max(WorkerHeartbeat.seen_at)))
    running = session.scalar(
        select(func.count()).select_from(Run).where(Run.status == RunStatus.RUNNING.value)
    )

    def per_job(runs: dict[int, Run], value: str) -> list[Sample]:
        samples = []
        for job_id, run in runs.items():
            if job_id in slugs:
                figure = {
                    "finished": _timestamp(run.finished_at),
                    "duration": run.duration_seconds or 0.0,
                    "size": float(run.bytes_written),
                }[value]
                samples.append(({"backup_job": slugs[job_id]}, figure))
        return sorted(samples, key=lambda sample: sample[0]["backup_job"])

    out = Exposition()
    out.family(
        "mackuper_job_info",
        "gauge",
        "A backup job: its storage name, display name and whether it is enabled.",
        [
            ({"backup_job": job.slug, "name": job.name, "enabled": str(job.enabled).lower()}, 1.0)
            for job in jobs
        ],
    )
    out.family(
        "mackuper_job_last_success_timestamp_seconds",
        "gauge",
        "When the job's last successful backup finished (Unix time).",
        per_job(successes, "finished"),
    )
    out.family(
        "mackuper_job_last_duration_seconds",
        "gauge",
        "How long the job's last finished backup took (success, warning or failure).",
        per_job(ended, "duration"),
    )
    out.family(
        "mackuper_job_last_size_bytes",
        "gauge",
        "Size of the archive of the job's last stored backup (success or warning).",
        per_job(stored, "size"),
    )
    out.family(
        "mackuper_job_runs",
        "counter",
        "Finished backup runs of the job by status.",
        sorted(
            (
                ({"backup_job": slugs[job_id], "status": status}, float(count))
                for job_id, status, count in counts
                if job_id in slugs
            ),
            key=lambda sample: (sample[0]["backup_job"], sample[0]["status"]),
        ),
    )
    out.family(
        "mackuper_uploaded_bytes",
        "counter",
        "Bytes of archives uploaded to each destination, including ones retention removed.",
        [({"destination": name}, float(total or 0)) for name, total in uploaded],
    )
    out.family(
        "mackuper_runs_running",
        "gauge",
        "Runs in progress now.",
        [({}, float(running or 0))],
    )
    out.family(
        "mackuper_scheduler_up",
        "gauge",
        "1 when a worker (scheduler) sent a heartbeat recently, else 0.",
        [({}, 1.0 if beat is not None and now - beat <= HEARTBEAT_FRESH else 0.0)],
    )
    out.family(
        "mackuper_worker_last_heartbeat_timestamp_seconds",
        "gauge",
        "When a worker last sent a heartbeat (Unix time; 0 when none is known).",
        [({}, _timestamp(beat))],
    )
    return Response(out.text(), 200, content_type=CONTENT_TYPE)
