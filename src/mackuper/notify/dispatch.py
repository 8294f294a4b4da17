"""Sending a run's alerts and pings: in parallel, bounded in time, never raising.

A backup must not fail or hang because a chat service is down: every target runs
in its own daemon thread, the caller waits at most `DEADLINE` seconds, and each
failure comes back as one line for the run log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.fernet import InvalidToken
from sqlalchemy import select

from mackuper.models import NotificationChannel
from mackuper.notify import channels, pings
from mackuper.notify.channels import NotifyError
from mackuper.notify.message import Message, RunEvent, build_message
from mackuper.notify.settings import JobAlerts
from mackuper.runtime import Runtime

logger = logging.getLogger(__name__)

DEADLINE = 30.0
CHANNEL_DEFAULT_EVENTS = {
    "start": False,
    "success": False,
    "warning": True,
    "failure": True,
    "worker": True,
}
"""Events a global channel gets unless told otherwise; "worker" is the heartbeat alert."""

Log = Callable[[str, str], None]


@dataclass(frozen=True)
class Target:
    label: str
    """What the run log calls it ("channel 'ops'", "fail ping"); never the URL."""
    send: Callable[[], None]


def deliver(targets: Iterable[Target], deadline: float | None = None) -> list[str]:
    """Send to every target at once; the failures as "label: reason" lines."""
    deadline = DEADLINE if deadline is None else deadline
    failures: list[str] = []
    lock = threading.Lock()

    def attempt(target: Target) -> None:
        try:
            target.send()
        except NotifyError as error:
            reason = str(error)
        except Exception as error:  # noqa: BLE001 - one broken channel must not stop the others
            logger.warning("notification to %s failed", target.label, exc_info=True)
            reason = f"internal error ({type(error).__name__})"
        else:
            return
        with lock:
            failures.append(f"{target.label}: {reason}")

    threads = {
        target.label: threading.Thread(target=attempt, args=(target,), daemon=True, name="notify")
        for target in targets
    }
    for thread in threads.values():
        thread.start()
    end = time.monotonic() + deadline
    for label, thread in threads.items():
        thread.join(max(0.0, end - time.monotonic()))
        if thread.is_alive():
            with lock:
                failures.append(f"{label}: no answer within {deadline:.0f} s")
    with lock:
        return list(failures)


def channel_events(channel: NotificationChannel) -> dict[str, bool]:
    return {**CHANNEL_DEFAULT_EVENTS, **{k: bool(v) for k, v in channel.events.items()}}


def _apprise_target(label: str, url: str, message: Message) -> Target:
    return Target(label, lambda: channels.send(url, message.title, message.body, message.kind))


def global_targets(runtime: Runtime, event: str, message: Message) -> list[Target]:
    """A target for every enabled global channel that subscribed to `event`."""
    targets: list[Target] = []
    with runtime.sessions() as session:
        rows = session.scalars(
            select(NotificationChannel)
            .where(NotificationChannel.enabled.is_(True))
            .order_by(NotificationChannel.id)
        ).all()
    for channel in rows:
        if not channel_events(channel).get(event):
            continue
        label = f"channel {channel.name!r}"
        try:
            url = str(runtime.secrets.decrypt(channel.url_encrypted).get("url", ""))
        except InvalidToken:
            targets.append(Target(label, _unreadable))
            continue
        targets.append(_apprise_target(label, url, message))
    return targets


def _unreadable() -> None:
    raise NotifyError("its stored URL cannot be decrypted with the current master key")


def run_targets(
    runtime: Runtime, alerts: JobAlerts | None, event: RunEvent, ping_kind: str | None
) -> list[Target]:
    """Every channel, job URL and ping that should hear about `event`."""
    message = build_message(event)
    alerts = alerts or JobAlerts()
    targets: list[Target] = []
    if alerts.global_channels:
        targets += global_targets(runtime, event.event, message)
    if alerts.events.get(event.event):
        for number, url in enumerate(alerts.urls, 1):
            label = f"job URL {number} ({channels.service_name(url)})"
            targets.append(_apprise_target(label, url, message))
    if ping_kind and ping_kind in alerts.pings:
        url = alerts.pings[ping_kind]
        body = f"{message.title}\n{message.body}\n"
        targets.append(Target(f"{ping_kind} ping", lambda: pings.ping(url, body)))
    return targets


def ping_kind_for(event: str) -> str | None:
    return {"start": "start", "success": "success", "warning": "success", "failure": "fail"}.get(
        event
    )


class RunNotifier:
    """Tells the world a run started and how it ended; logs failures to the run log."""

    def __init__(
        self, runtime: Runtime, alerts: JobAlerts | None, log: Log, pings: bool = True
    ) -> None:
        self.runtime = runtime
        self.alerts = alerts
        self.log = log
        self.pings = pings
        """False for runs a dead-man ping must not count (only backups keep a job alive)."""
        self._start: threading.Thread | None = None

    def started(self, event: RunEvent) -> None:
        """Send the start alert and ping in the background; the run goes on at once."""
        self._start = threading.Thread(
            target=self._send, args=(event, self._ping_kind("start")), daemon=True, name="notify"
        )
        self._start.start()

    def finished(self, event: RunEvent) -> None:
        """Send the outcome (after the start ping, so a checker never sees them swapped)."""
        if self._start is not None:
            self._start.join(DEADLINE)
        self._send(event, self._ping_kind(event.event))

    def _ping_kind(self, event: str) -> str | None:
        return ping_kind_for(event) if self.pings else None

    def _send(self, event: RunEvent, ping_kind: str | None) -> None:
        try:
            targets = run_targets(self.runtime, self.alerts, event, ping_kind)
            failures = deliver(targets)
        except Exception:  # noqa: BLE001 - alerts never fail a backup
            logger.exception("could not send the %s alerts of run %s", event.event, event.run_id)
            self.log("warning", f"the {event.event} alerts could not be sent; see the server log")
            return
        for failure in failures:
            self.log("warning", f"notification failed: {failure}")
        sent = len(targets) - len(failures)
        if sent:
            self.log("info", f"{event.event} alert sent to {sent} target(s)")
