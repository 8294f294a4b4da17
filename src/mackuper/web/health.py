"""/health for container checks: the database answers and a worker is alive.

Also starts the web process's worker watch (alerts when the heartbeat stops).
A process just started gets `STARTUP_GRACE` before a missing heartbeat counts,
since `mackuper serve` starts its worker beside the web process.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mackuper.models import WorkerHeartbeat
from mackuper.notify.watch import WorkerWatch
from mackuper.web.runs import HEARTBEAT_FRESH

STARTUP_GRACE = timedelta(seconds=60)


def install(app: Flask) -> None:
    """Remember when this app started and run the worker watch in each web process."""
    app.extensions["mackuper_started_at"] = datetime.now(UTC)
    watch = WorkerWatch(app.extensions["mackuper"])
    app.extensions["mackuper_worker_watch"] = watch
    if not app.testing:
        app.before_request(watch.ensure_running)


def database_ok(session: Session) -> bool:
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def report(session: Session) -> tuple[dict[str, Any], bool]:
    """(the JSON answer, healthy?) for /health."""
    if not database_ok(session):
        return {
            "status": "error",
            "database": "unreachable",
            "worker": "unknown",
            "reason": "The database does not answer.",
        }, False
    now = datetime.now(UTC)
    last = session.scalar(select(func.max(WorkerHeartbeat.seen_at)))
    answer: dict[str, Any] = {
        "status": "ok",
        "database": "ok",
        "worker": "ok",
        "last_heartbeat": last.isoformat() if last else None,
    }
    if last is not None and now - last <= HEARTBEAT_FRESH:
        return answer, True
    started = current_app.extensions.get("mackuper_started_at", now)
    if now - started < STARTUP_GRACE:
        answer["worker"] = "starting"
        return answer, True
    answer["status"] = "error"
    answer["worker"] = "stale" if last else "none"
    answer["reason"] = (
        f"No worker heartbeat for {int((now - last).total_seconds())} s."
        if last
        else "No worker is running."
    )
    return answer, False
