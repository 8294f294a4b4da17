"""The alert and command parts of a job (notifications, pings, pre/post commands).

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
from mackuper.schemas.alerts import Commands, Notifications
from mackuper.schemas.answers import JobAlertsAnswer
from mackuper.schemas.jobs import AlertsBody, JobBody
from mackuper.web.access import require_commands_change
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors
from mackuper.web.operations import operation
from mackuper.web.security import login_required

blueprint = Blueprint("job_alerts", __name__, url_prefix="/api/jobs")


@dataclass
class AlertChanges:
    """What a form changes in a job's alerts; None keeps that part as it is."""

    notifications: Notifications | None = None
    commands: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)


def settle(job: Job, body: JobBody | AlertsBody) -> AlertChanges:
    """The changes `body` asks for, stored secrets filling blank URLs; errors keyed by field."""
    changes = AlertChanges()
    if body.notifications is not None:
        try:
            stored = runtime().secrets.decrypt(job.notify_secrets_encrypted)
        except InvalidToken:
            stored = {}
        changes.notifications = body.notifications.keep_stored(stored)
        changes.errors.update(
            {f"notifications.{k}": v for k, v in changes.notifications.problems().items()}
        )
    if "hooks" in body.model_fields_set:
        changes.commands = (body.hooks or Commands()).stored()
        if changes.commands != (job.hooks or {}):
            require_commands_change()
    return changes


def apply(job: Job, changes: AlertChanges) -> None:
    if changes.notifications is not None:
        secrets = changes.notifications.secrets()
        job.notifications = changes.notifications.public()
        job.notify_secrets_encrypted = runtime().secrets.encrypt(secrets) if secrets else None
    if changes.commands is not None:
        job.hooks = changes.commands


def _json(job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "notifications": job.notifications, "hooks": job.hooks}


def _job(job_id: int) -> Job:
    job = get_db().get(Job, job_id)
    if job is None:
        fail("No such job.", 404)
    return job


@blueprint.get("/<int:job_id>/alerts")
@login_required
@operation("A job's alert settings and commands", responses={200: JobAlertsAnswer})
def get_alerts(job_id: int) -> Response:
    return jsonify(_json(_job(job_id)))


@blueprint.put("/<int:job_id>/alerts")
@login_required
@operation(
    "Change a job's alert settings or commands (a part left out is kept)",
    body=AlertsBody,
    responses={200: JobAlertsAnswer},
)
def update_alerts(job_id: int, body: AlertsBody) -> Response:
    job = _job(job_id)
    changes = settle(job, body)
    if changes.errors:
        field_errors(changes.errors)
    apply(job, changes)
    get_db().commit()
    return jsonify(_json(job))
