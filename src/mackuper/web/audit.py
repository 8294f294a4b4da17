"""The audit log: who did what, when, from which address, to which object.

One table, `AUDITED`, names the endpoints whose successful requests are recorded and
the action each records; `after_request` writes the entry, so no view repeats it.
Logins (both outcomes) and logouts are recorded by the login views, which know the
user before (or after) the session changes.

An entry's details are what the request asked for, read from its validated body and
query (web.operations) with every secret field reduced to "(set)" or "(blank)", and
settings that are checked later against their kind (a job's source, an SSH probe)
reduced to their field names: a value typed into a secret field never reaches the
table or the log. Entries are only added; the retention setting deletes old ones.
Each entry is also one line of the log file (logger `mackuper.audit`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, render_template, request
from flask_login import current_user
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from sqlalchemy import delete, select
from sqlalchemy.sql import Select

from mackuper import installation
from mackuper.models import AuditEvent
from mackuper.schemas.base import Secret
from mackuper.schemas.users import AuditAnswer, AuditQuery, RetentionAnswer, RetentionBody
from mackuper.web.database import get_db, runtime
from mackuper.web.operations import Files, operation
from mackuper.web.security import login_required
from mackuper.web.serialize import iso

logger = logging.getLogger("mackuper.audit")
blueprint = Blueprint("audit", __name__)

KEEP_DAYS_SETTING = "audit_keep_days"
DEFAULT_KEEP_DAYS = 365
MAX_TEXT = 200

AUDITED: dict[str, str] = {
    "auth.change_password": "password changed",
    "auth.setup_finish": "setup finished",
    "tokens.create_token": "token created",
    "tokens.revoke_token": "token revoked",
    "two_factor.confirm_totp": "authenticator app added",
    "two_factor.disable_totp": "authenticator app removed",
    "two_factor.renew_recovery_codes": "recovery codes renewed",
    "two_factor.add_passkey": "passkey added",
    "two_factor.remove_passkey": "passkey removed",
    "two_factor.set_policy": "two-factor requirement changed",
    "users.create_user": "user created",
    "users.update_user": "user changed",
    "users.reset_password": "password reset",
    "users.delete_user": "user deleted",
    "sso.update_settings": "single sign-on settings changed",
    "invitations.create_invitation": "user invited",
    "invitations.revoke_invitation": "invitation withdrawn",
    "jobs.create_job": "job created",
    "jobs.update_job": "job changed",
    "jobs.delete_job": "job deleted",
    "jobs.set_enabled": "job schedule switched",
    "job_alerts.update_alerts": "job alerts changed",
    "jobs.run_now": "backup started by hand",
    "runs.cancel_run": "run cancelled",
    "runs.clean_history": "history deleted",
    "destinations.create_destination": "destination created",
    "destinations.update_destination": "destination changed",
    "destinations.delete_destination": "destination deleted",
    "notifications.create_channel": "alert channel created",
    "notifications.update_channel": "alert channel changed",
    "notifications.delete_channel": "alert channel deleted",
    "installation_settings.update_settings": "settings changed",
    "containers.update_engine": "container engine changed",
    "restore.set_verify_schedule": "verify schedule changed",
    "audit.set_retention": "audit retention changed",
    "restore.start_restore": "restore started",
    "restore.start_verify": "verify started",
    "restore.import_from_destination": "backups imported",
    "restore.download_backup": "backup downloaded",
    "restore.download_url": "backup download link made",
    "restore.extract_from_backup": "files downloaded",
    "restore.extract_with_key": "files downloaded",
    "databases.download_dump": "database dump downloaded",
    "databases.download_dump_with_key": "database dump downloaded",
    "databases.start_database_restore": "database restore started",
    "volume_restore.start_volume_restore": "volume restore started",
    "safekeeping.export_configuration": "configuration exported",
    "safekeeping.reveal_master_key": "master key shown",
}

_FIXED_OBJECTS = {
    "auth.change_password": "own password",
    "auth.setup_finish": "setup",
    "two_factor.confirm_totp": "own authenticator app",
    "two_factor.disable_totp": "own authenticator app",
    "two_factor.renew_recovery_codes": "own recovery codes",
    "two_factor.set_policy": "two-factor requirement",
    "runs.clean_history": "run history",
    "installation_settings.update_settings": "installation settings",
    "containers.update_engine": "container engine",
    "sso.update_settings": "single sign-on",
    "restore.set_verify_schedule": "verify schedule",
    "audit.set_retention": "audit log",
    "safekeeping.export_configuration": "configuration",
    "safekeeping.reveal_master_key": "master key",
}
"""Objects of actions that name no row."""

_OBJECT_ARGUMENTS = {
    "job_id": "job",
    "destination_id": "destination",
    "channel_id": "channel",
    "run_id": "run",
    "artifact_id": "backup",
    "token_id": "token",
    "user_id": "user",
    "invitation_id": "invitation",
    "passkey_id": "passkey",
}


def record(
    action: str,
    object_name: str = "",
    details: dict[str, Any] | None = None,
    actor: str | None = None,
) -> None:
    """Add one entry (its own transaction: call after the view's commit) and log it."""
    if actor is None and current_user.is_authenticated:
        actor = current_user.user.username
    event = AuditEvent(
        at=datetime.now(UTC),
        actor=actor,
        address=request.remote_addr,
        action=action,
        object=object_name[:MAX_TEXT],
        details=details or {},
    )
    with runtime().sessions.begin() as session:
        session.add(event)
        keep_days = _keep_days(session)
        if keep_days is not None:
            cutoff = datetime.now(UTC) - timedelta(days=keep_days)
            session.execute(delete(AuditEvent).where(AuditEvent.at < cutoff))
    logger.info(
        "audit %s by %s from %s on %s %s",
        action,
        actor or "(anonymous)",
        event.address,
        event.object or "-",
        json.dumps(event.details, sort_keys=True),
    )


def _keep_days(session: Any) -> int | None:
    text = installation.read(session, KEEP_DAYS_SETTING)
    if text is None:
        return DEFAULT_KEEP_DAYS
    return int(text) if text.isdigit() else None


def _is_secret(field: FieldInfo) -> bool:
    if any(isinstance(item, Secret) for item in field.metadata):
        return True
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("writeOnly") is True


def public_view(value: Any) -> Any:
    """`value` (a validated model, or what it holds) without any secret value in it."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        shown: dict[str, Any] = {}
        for name in sorted(value.model_fields_set):
            field = fields.get(name)
            if field is None:
                continue
            item = getattr(value, name)
            shown[name] = (
                ("(set)" if item else "(blank)") if _is_secret(field) else public_view(item)
            )
        return shown
    if isinstance(value, dict):
        # Not checked against a model yet (a job's source): which fields, never what.
        return {"fields": sorted(str(key) for key in value)[:50]}
    if isinstance(value, list | tuple):
        return [public_view(item) for item in value[:50]]
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:MAX_TEXT]


def _object_of(response: Response) -> str:
    fixed = _FIXED_OBJECTS.get(request.endpoint or "")
    if fixed is not None:
        return fixed
    body = g.get("api_body")
    for argument, kind in _OBJECT_ARGUMENTS.items():
        if request.view_args and argument in request.view_args:
            return f"{kind} {request.view_args[argument]}"
        if isinstance(getattr(body, argument, None), int):
            return f"{kind} {getattr(body, argument)}"
    answer = response.get_json(silent=True) if response.is_json else None
    if isinstance(answer, dict) and isinstance(answer.get("id"), int):
        # A flat answer (a new token): the blueprint names the kind.
        return f"{(request.blueprint or '').rstrip('s')} {answer['id']} {answer.get('name', '')}"
    if isinstance(answer, dict):
        for kind, item in answer.items():
            if isinstance(item, dict) and "id" in item:
                name = item.get("name") or item.get("username") or ""
                return f"{kind} {item['id']} {name}".strip()
    return ""


def _after_request(response: Response) -> Response:
    action = AUDITED.get(request.endpoint or "")
    if action is None or not 200 <= response.status_code < 300:
        return response
    details: dict[str, Any] = {}
    for part in ("api_body", "api_query"):
        model = g.get(part)
        if model is not None:
            details.update(public_view(model))
    given = request.get_json(silent=True) if request.is_json else None
    if g.get("api_body") is None and isinstance(given, dict):
        # A view that checks its body itself (a destination, by its stored kind).
        details.update(public_view(given))
    if request.view_args:
        details.update({key: value for key, value in request.view_args.items()})
    answer = response.get_json(silent=True) if response.is_json else None
    if isinstance(answer, dict) and isinstance(answer.get("run"), dict):
        details["run_id"] = answer["run"].get("id")
    record(action, _object_of(response), details)
    return response


def install(app: Flask) -> None:
    app.after_request(_after_request)


def _filtered(query: AuditQuery) -> Select[AuditEvent]:
    statement = select(AuditEvent).order_by(AuditEvent.id.desc())
    if query.actor:
        statement = statement.where(AuditEvent.actor == query.actor)
    if query.action:
        statement = statement.where(AuditEvent.action == query.action)
    if query.object:
        statement = statement.where(AuditEvent.object.contains(query.object, autoescape=True))
    if query.since:
        statement = statement.where(AuditEvent.at >= query.since)
    if query.until:
        statement = statement.where(AuditEvent.at < query.until)
    return statement


def _json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": iso(event.at),
        "actor": event.actor,
        "address": event.address,
        "action": event.action,
        "object": event.object,
        "details": event.details,
    }


@blueprint.get("/audit")
@login_required
def page() -> str:
    return render_template("audit.html", tab="audit", actions=sorted(set(AUDITED.values())))


@blueprint.get("/api/audit")
@login_required
@operation("The audit log, newest first, filtered", query=AuditQuery, responses={200: AuditAnswer})
def list_events(query: AuditQuery) -> Response:
    rows = get_db().scalars(_filtered(query).limit(query.limit)).all()
    return jsonify(events=[_json(row) for row in rows])


@blueprint.get("/api/audit/export")
@login_required
@operation(
    "The audit log as JSON lines (one entry a line, oldest first), filtered",
    query=AuditQuery,
    responses={200: Files(("application/jsonl",))},
)
def export_events(query: AuditQuery) -> Response:
    statement = _filtered(query).order_by(None).order_by(AuditEvent.id)
    events = [_json(row) for row in get_db().scalars(statement)]

    def lines() -> Iterator[str]:
        for event in events:
            yield json.dumps(event, sort_keys=True) + "\n"

    response = Response(lines(), mimetype="application/jsonl")
    response.headers["Content-Disposition"] = 'attachment; filename="mackuper-audit.jsonl"'
    return response


@blueprint.get("/api/audit/retention")
@login_required
@operation("How long audit entries are kept", responses={200: RetentionAnswer})
def get_retention() -> Response:
    return jsonify(keep_days=_keep_days(get_db()))


@blueprint.put("/api/audit/retention")
@login_required
@operation(
    "Set how long audit entries are kept (null: forever)",
    body=RetentionBody,
    responses={200: RetentionAnswer},
)
def set_retention(body: RetentionBody) -> Response:
    session = get_db()
    installation.write(session, KEEP_DAYS_SETTING, str(body.keep_days or "forever"))
    session.commit()
    return jsonify(keep_days=body.keep_days)
