"""Per-job alert settings: which events, which URLs, which pings.

Public choices live in `Job.notifications` (JSON); the URLs, which hold tokens,
live encrypted in `Job.notify_secrets_encrypted` as
`{"urls": [...], "ping_start": ..., "ping_success": ..., "ping_fail": ...}`.
In the API a URL is only ever "set" or "not set" (or a count). The form's input is
checked by mackuper.schemas.alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mackuper.notify.message import DEFAULT_EVENTS, EVENTS
from mackuper.notify.pings import PING_KINDS


@dataclass
class JobAlerts:
    """A job's alert settings with its secrets decrypted (worker side only)."""

    events: dict[str, bool] = field(default_factory=lambda: dict(DEFAULT_EVENTS))
    global_channels: bool = True
    urls: list[str] = field(default_factory=list)
    pings: dict[str, str] = field(default_factory=dict)


def load(public: dict[str, Any], secrets: dict[str, Any]) -> JobAlerts:
    events = dict(DEFAULT_EVENTS)
    stored_events = public.get("events")
    if isinstance(stored_events, dict):
        events.update({name: bool(stored_events[name]) for name in EVENTS if name in stored_events})
    urls = secrets.get("urls")
    return JobAlerts(
        events=events,
        global_channels=bool(public.get("global_channels", True)),
        urls=[str(url) for url in urls] if isinstance(urls, list) else [],
        pings={
            kind: str(secrets[f"ping_{kind}"])
            for kind in PING_KINDS
            if isinstance(secrets.get(f"ping_{kind}"), str) and secrets[f"ping_{kind}"]
        },
    )
