"""A backup that looked like ransomware: what was found, and a person's acknowledgement.

While a job has an unacknowledged anomaly its retention deletes nothing, so backups
from before the damage stay. Acknowledging (after looking at the files) lets retention
run again; the anomalous backup's log records who acknowledged it and when.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, jsonify
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from mackuper.models import Job, Run, RunLog
from mackuper.schemas.answers import Answer
from mackuper.web.database import get_db
from mackuper.web.forms import fail
from mackuper.web.operations import operation
from mackuper.web.security import login_required

logger = logging.getLogger(__name__)
blueprint = Blueprint("anomalies", __name__, url_prefix="/api/jobs")


class Anomaly(Answer):
    run_id: int | None
    """The backup run that looked wrong; None when nothing awaits acknowledgement."""
    findings: list[str]
    """What differed from the job's recent backups."""


class AnomalyAnswer(Answer):
    anomaly: Anomaly


class PendingAnomaly(Anomaly):
    job_id: int
    job_name: str


class AnomaliesAnswer(Answer):
    anomalies: list[PendingAnomaly]
    """Every job whose anomaly awaits acknowledgement."""


def _job(job_id: int) -> Job:
    job = get_db().get(Job, job_id)
    if job is None:
        fail("No such job.", 404)
    return job


def _anomaly(job: Job) -> dict[str, object]:
    run = get_db().get(Run, job.anomaly_run_id) if job.anomaly_run_id is not None else None
    findings = ((run.details or {}).get("results") or {}).get("anomalies") if run else None
    return {"run_id": job.anomaly_run_id, "findings": [str(item) for item in findings or []]}


def _answer(job: Job) -> Response:
    return jsonify(anomaly=_anomaly(job))


@blueprint.get("/anomalies")
@login_required
@operation(
    "Backup anomalies awaiting acknowledgement, one per job", responses={200: AnomaliesAnswer}
)
def list_anomalies() -> Response:
    jobs = (
        get_db()
        .scalars(select(Job).where(Job.anomaly_run_id.is_not(None)).order_by(Job.name))
        .all()
    )
    return jsonify(
        anomalies=[{"job_id": job.id, "job_name": job.name, **_anomaly(job)} for job in jobs]
    )


@blueprint.get("/<int:job_id>/anomaly")
@login_required
@operation("The job's backup anomaly awaiting acknowledgement", responses={200: AnomalyAnswer})
def get_anomaly(job_id: int) -> Response:
    return _answer(_job(job_id))


@blueprint.post("/<int:job_id>/anomaly/acknowledge")
@login_required
@operation(
    "Acknowledge the job's backup anomaly, so retention deletes old backups again",
    responses={200: AnomalyAnswer},
)
def acknowledge_anomaly(job_id: int) -> Response:
    job = _job(job_id)
    if job.anomaly_run_id is None:
        return _answer(job)
    who = current_user.user.username
    run_id, job.anomaly_run_id = job.anomaly_run_id, None
    message = (
        f"anomaly acknowledged by {who} at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC:"
        " retention may delete this job's old backups again"
    )
    if get_db().get(Run, run_id) is not None:
        get_db().add(RunLog(run_id=run_id, level="info", message=message))
    get_db().commit()
    logger.info("job %s: %s", job.name, message)
    return _answer(job)
