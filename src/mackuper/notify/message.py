"""What an alert says, as a pure function of what happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mackuper.models import RunStatus

EVENTS = ("start", "success", "warning", "failure")
"""Run events a channel can subscribe to."""

DEFAULT_EVENTS = {"start": False, "success": False, "warning": True, "failure": True}

_KIND_BY_STATUS: dict[str, str] = {
    RunStatus.SUCCESS: "success",
    RunStatus.WARNING: "warning",
    RunStatus.FAILED: "failure",
    RunStatus.INTERRUPTED: "failure",
}


@dataclass(frozen=True)
class RunEvent:
    """One moment of a run worth telling someone about."""

    event: str
    """start, success, warning or failure."""
    job_name: str
    run_id: int
    status: str
    run_url: str
    started_at: datetime | None = None
    duration_seconds: float | None = None
    size: int | None = None
    files: int | None = None
    error: str | None = None
    could_not_start: bool = False
    action: str = "Backup"
    """What kind of run it is, as the title says it: Backup, Restore, Verification."""


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    kind: str
    """Apprise notify type: info, success, warning or failure."""


def event_for_status(status: str) -> str | None:
    """The event a final run status raises; None for statuses nobody is alerted about.

    A cancelled run was stopped by a person, so it raises nothing.
    """
    return _KIND_BY_STATUS.get(status)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{seconds:.1f} s"


def _headline(event: RunEvent) -> tuple[str, str]:
    if event.event == "start":
        return f"{event.action} {event.job_name!r} started", "info"
    if event.event == "success":
        return f"{event.action} {event.job_name!r} succeeded", "success"
    if event.event == "warning":
        return f"{event.action} {event.job_name!r} finished with warnings", "warning"
    if event.could_not_start:
        return f"{event.action} {event.job_name!r} could not start", "failure"
    return f"{event.action} {event.job_name!r} failed", "failure"


def build_message(event: RunEvent) -> Message:
    """The title and plain-text body of the alert for `event`."""
    title, kind = _headline(event)
    lines = [f"Job: {event.job_name}", f"Status: {event.status}", f"Run: #{event.run_id}"]
    if event.started_at is not None:
        lines.append(f"Started: {event.started_at.strftime('%Y-%m-%d %H:%M:%S UTC')}")
    if event.duration_seconds is not None and event.event != "start":
        lines.append(f"Duration: {human_duration(event.duration_seconds)}")
    if event.size:
        lines.append(f"Size: {human_size(event.size)}")
    if event.files:
        lines.append(f"Files: {event.files}")
    if event.error:
        lines.append(f"Error: {event.error}")
    lines.append(f"Details: {event.run_url}")
    return Message(title=f"Mackuper: {title}", body="\n".join(lines), kind=kind)


def run_url(base_url: str, run_id: int) -> str:
    return f"{base_url.rstrip('/')}/runs/{run_id}"
