"""The web process notices a silent worker and alerts once per outage.

Each web process runs a small daemon thread calling `check_worker`. The state
("up" or "down") is one row in `settings`, changed with a conditional UPDATE, so
however many web processes watch, only the one that flips it sends the alert.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from mackuper.db import changed_rows
from mackuper.models import Setting, WorkerHeartbeat
from mackuper.notify.dispatch import deliver, global_targets
from mackuper.notify.message import Message, human_duration
from mackuper.runtime import Runtime

logger = logging.getLogger(__name__)

STATE_KEY = "worker_alert_state"


def _flip(runtime: Runtime, old: str, new: str) -> bool:
    """Move the stored state from `old` to `new`; True only for the process that did."""
    with runtime.sessions() as session:
        if session.get(Setting, STATE_KEY) is None:
            if old != "up":
                return False
            session.add(Setting(key=STATE_KEY, value=new))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
            return True
        changed = changed_rows(
            session.execute(
                update(Setting)
                .where(Setting.key == STATE_KEY, Setting.value == old)
                .values(value=new)
            )
        )
        session.commit()
        return changed == 1


def _message(state: str, last: datetime | None, now: datetime, base_url: str) -> Message:
    if state == "down":
        since = (
            f"No worker has sent a heartbeat for {human_duration((now - last).total_seconds())}"
            f" (last at {last.strftime('%Y-%m-%d %H:%M:%S UTC')})."
            if last is not None
            else "No worker is running."
        )
        return Message(
            title="Mackuper: no worker is running; backups are not being made",
            body=f"{since}\nScheduled backups will not start until a worker runs again.\n"
            f"Details: {base_url}/",
            kind="failure",
        )
    return Message(
        title="Mackuper: a worker is running again",
        body=f"A worker sent a heartbeat at {now.strftime('%Y-%m-%d %H:%M:%S UTC')}.\n"
        f"Details: {base_url}/",
        kind="success",
    )


def check_worker(runtime: Runtime, now: datetime, threshold: timedelta) -> str | None:
    """Alert when the worker went silent or came back; returns "down"/"up" if this call did."""
    with runtime.sessions() as session:
        last = session.scalar(select(func.max(WorkerHeartbeat.seen_at)))
    healthy = last is not None and now - last <= threshold
    old, new = ("down", "up") if healthy else ("up", "down")
    if not _flip(runtime, old, new):
        return None
    message = _message(new, last, now, runtime.settings.public_url)
    logger.log(logging.WARNING if new == "down" else logging.INFO, "%s", message.title)
    targets = global_targets(runtime, "worker", message)
    for failure in deliver(targets):
        logger.warning("worker alert not delivered: %s", failure)
    return new


class WorkerWatch:
    """A daemon thread per web process calling `check_worker` now and then."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.threshold = timedelta(seconds=runtime.settings.worker_alert_seconds)
        self.interval = max(1.0, min(30.0, self.threshold.total_seconds() / 4))
        self.stopping = threading.Event()
        self.pid = 0

    def ensure_running(self) -> None:
        """Start the thread in this process (again after a fork); cheap when running."""
        if self.pid == os.getpid() or not self.threshold:
            return
        self.pid = os.getpid()
        threading.Thread(target=self._loop, daemon=True, name="worker-watch").start()

    def _loop(self) -> None:
        # Give a worker started together with this process time for its first heartbeat.
        if self.stopping.wait(self.threshold.total_seconds()):
            return
        while not self.stopping.is_set():
            try:
                check_worker(self.runtime, datetime.now(UTC), self.threshold)
            except Exception:  # noqa: BLE001 - the watch must outlive a database hiccup
                logger.warning("worker watch check failed", exc_info=True)
            self.stopping.wait(self.interval)
