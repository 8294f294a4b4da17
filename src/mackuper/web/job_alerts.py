"""The alert and command parts of the job form (notifications, pings, pre/post hooks).

A payload without `notifications` or `hooks` keeps what the job has, so forms
that do not show them never erase them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken

from mackuper.models import Job
from mackuper.notify import settings as alert_settings
from mackuper.web.database import runtime
from mackuper.worker import hooks


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
        form.hooks, errors = hooks.validate(payload.get("hooks"))
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
