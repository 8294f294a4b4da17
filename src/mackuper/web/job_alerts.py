"""The alert and command parts of a job (notifications, pings, pre/post hooks).

Sent with the job form (`notifications`, `hooks` in POST/PUT /api/jobs) or on
their own with PUT /api/jobs/<id>/alerts. A payload without `notifications` or
`hooks` keeps what the job has, so forms that do not show them never erase them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken
from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from mackuper.models import Job
from mackuper.notify import settings as alert_settings
from mackuper.runs import commands
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors, json_body
from mackuper.web.security import login_required

blueprint = Blueprint("job_alerts", __name__, url_prefix="/api/jobs")


@dataclass
class JobAlertForm:
    notifications: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None
    hooks: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)


def validate(job: Job, payload: dict[str, Any]) -> JobAlertForm:
    form = JobAlertForm()
    given = payload.get("notifications")
    if isinstance(given, dict):
        try:
            stored = runtime().secrets.decrypt(job.notify_secrets_encrypted)
        except InvalidToken:
            stored = {}
        public, secrets, errors = alert_settings.validate(given, stored)
        form.notifications, form.secrets = public, secrets
        form.errors.update(errors)
    if "hooks" in payload:
        form.hooks, errors = commands.validate(payload.get("hooks"))
        form.errors.update(errors)
    return form


def apply(job: Job, form: JobAlertForm) -> None:
    if form.notifications is not None:
        job.notifications = form.notifications
        job.notify_secrets_encrypted = (
            runtime().secrets.encrypt(form.secrets) if form.secrets else None
        )
    if form.hooks is not None:
        job.hooks = form.hooks


def _json(job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "notifications": job.notifications, "hooks": job.hooks}


def _job(job_id: int) -> Job:
    job = get_db().get(Job, job_id)
    if job is None:
        fail("No such job.", 404)
    return job


@blueprint.get("/<int:job_id>/alerts")
@login_required
def get_alerts(job_id: int) -> Response:
    return jsonify(_json(_job(job_id)))


@blueprint.put("/<int:job_id>/alerts")
@login_required
def update_alerts(job_id: int) -> Response:
    job = _job(job_id)
    form = validate(job, json_body())
    if form.errors:
        field_errors(form.errors)
    apply(job, form)
    get_db().commit()
    return jsonify(_json(job))
