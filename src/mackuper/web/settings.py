"""Installation settings API: time zone, missed-tick grace, concurrency, history."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from mackuper import installation
from mackuper.core import schedule
from mackuper.schemas.answers import InstallationAnswer
from mackuper.schemas.api import InstallationBody
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import field_errors
from mackuper.web.operations import operation
from mackuper.web.security import login_required

blueprint = Blueprint("installation_settings", __name__, url_prefix="/api/settings")

_NUMBERS: dict[str, tuple[str, int, int]] = {
    "missed_tick_grace_minutes": (installation.GRACE_MINUTES, *installation.GRACE_RANGE),
    "max_concurrent_runs": (installation.MAX_CONCURRENT_RUNS, *installation.CONCURRENCY_RANGE),
    "history_keep_days": (
        installation.HISTORY_DAYS,
        installation.MIN_HISTORY_DAYS,
        installation.MAX_HISTORY_DAYS,
    ),
}


def current() -> dict[str, Any]:
    session = get_db()
    return {
        "timezone": installation.timezone(session),
        "missed_tick_grace_minutes": int(
            installation.missed_tick_grace(session).total_seconds() // 60
        ),
        "max_concurrent_runs": installation.max_concurrent_runs(
            session, runtime().settings.max_concurrent_runs
        ),
        "history_keep_days": installation.history_keep_days(session),
    }


@blueprint.get("/installation")
@login_required
@operation("The installation's settings", responses={200: InstallationAnswer})
def get_settings() -> Response:
    return jsonify(settings=current())


@blueprint.put("/installation")
@login_required
@operation(
    "Change installation settings (fields left out are unchanged)",
    body=InstallationBody,
    responses={200: InstallationAnswer},
)
def update_settings(body: InstallationBody) -> Response:
    """Change any of the fields given; history_keep_days may be null (keep all)."""
    given = body.model_fields_set
    errors: dict[str, str] = {}
    changes: dict[str, str | None] = {}
    if "timezone" in given:
        name = body.timezone or ""
        try:
            schedule.zone(name)
            changes[installation.TIMEZONE] = name
        except schedule.ScheduleError:
            errors["timezone"] = "Choose a time zone such as Europe/Paris or UTC."
    for field, (key, low, high) in _NUMBERS.items():
        if field not in given:
            continue
        value = getattr(body, field)
        if field == "history_keep_days" and value is None:
            changes[key] = None
        elif value is None or not low <= value <= high:
            errors[field] = f"Use a whole number from {low} to {high}."
        else:
            changes[key] = str(value)
    if errors:
        field_errors(errors)
    session = get_db()
    for key, text in changes.items():
        installation.write(session, key, text)
    session.commit()
    return jsonify(settings=current())
