"""Scheduled verification: on an installation-wide cron, verify each job's newest backup
at each destination.

The schedule lives in the `verify_schedule` setting ({"cron", "deep"}; times in the
installation's zone). Each worker calls `enqueue_due_verifications` every loop; the
`verify_anchor` setting (the last tick handled) moves by a conditional UPDATE, so
with several workers exactly one of them queues a tick's verify runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mackuper import installation
from mackuper.core import schedule
from mackuper.db import changed_rows
from mackuper.models import Artifact, ArtifactState, Job, Run, Setting
from mackuper.restore.runs import VERIFY
from mackuper.runtime import Runtime

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


def enqueue_due_verifications(runtime: Runtime, now: datetime) -> int:
    """Queue the verify runs of a due tick (at most once per tick); returns how many."""
    with runtime.sessions() as session:
        wanted = read_schedule(session)
        if not wanted["cron"]:
            return 0
        anchor_row = session.get(Setting, ANCHOR_KEY)
        if anchor_row is None:
            session.add(Setting(key=ANCHOR_KEY, value=now.astimezone(UTC).isoformat()))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
            return 0
        try:
            anchor = datetime.fromisoformat(anchor_row.value)
            tick, new_anchor = schedule.due_tick(
                wanted["cron"], installation.timezone(session), anchor, now, GRACE
            )
        except (ValueError, schedule.ScheduleError):
            return 0
        if new_anchor == anchor:
            return 0
        moved = changed_rows(
            session.execute(
                update(Setting)
                .where(Setting.key == ANCHOR_KEY, Setting.value == anchor_row.value)
                .values(value=new_anchor.isoformat())
            )
        )
        if not moved:
            session.rollback()  # another worker handled this tick
            return 0
        count = _queue_newest(session, bool(wanted["deep"])) if tick is not None else 0
        session.commit()
        return count


def _queue_newest(session: Session, deep: bool) -> int:
    artifacts = session.scalars(
        select(Artifact)
        .join(Job, Job.id == Artifact.job_id)
        .where(Artifact.state == ArtifactState.STORED.value, Job.enabled.is_(True))
        .order_by(Artifact.created_at.desc(), Artifact.id.desc())
    )
    seen: set[tuple[int | None, int]] = set()
    for artifact in artifacts:
        pair = (artifact.job_id, artifact.destination_id)
        if pair in seen:
            continue
        seen.add(pair)
        session.add(
            Run(
                job_id=artifact.job_id,
                job_name=artifact.run.job_name,
                kind=VERIFY,
                trigger="schedule",
                archive_name=artifact.key.rsplit("/", 1)[-1],
                details={"artifact_id": artifact.id, "archive_key": artifact.key, "deep": deep},
            )
        )
    return len(seen)
