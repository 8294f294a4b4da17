"""The verify schedule's settings: an installation-wide cron that verifies each job's
newest backup at each destination.

The schedule lives in the `verify_schedule` setting ({"cron", "deep"}; times in the
installation's zone); `verify_anchor` holds the last tick handled. The runs are
queued by `mackuper.runs.enqueue.enqueue_due_verifications`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from mackuper.models import Setting

SCHEDULE_KEY = "verify_schedule"
ANCHOR_KEY = "verify_anchor"
GRACE = timedelta(hours=1)


def read_schedule(session: Session) -> dict[str, Any]:
    """{"cron": str | None, "deep": bool}."""
    row = session.get(Setting, SCHEDULE_KEY)
    try:
        stored = json.loads(row.value) if row is not None else {}
    except ValueError:
        stored = {}
    return {"cron": stored.get("cron") or None, "deep": bool(stored.get("deep"))}


def save_schedule(session: Session, cron: str | None, deep: bool, now: datetime) -> None:
    """Store the schedule (validated by the caller) and restart counting from `now`."""
    value = json.dumps({"cron": cron, "deep": deep})
    for key, text in ((SCHEDULE_KEY, value), (ANCHOR_KEY, now.astimezone(UTC).isoformat())):
        row = session.get(Setting, key)
        if row is None:
            session.add(Setting(key=key, value=text))
        else:
            row.value = text
    session.commit()
