"""Per-job alert settings: which events, which URLs, which pings.

Public choices live in `Job.notifications` (JSON); the URLs, which hold tokens,
live encrypted in `Job.notify_secrets_encrypted` as
`{"urls": [...], "ping_start": ..., "ping_success": ..., "ping_fail": ...}`.
In the API a URL is only ever "set" or "not set" (or a count).

The form sends `notifications` as
`{"events": {"failure": true, ...}, "global_channels": true,
"urls": "one Apprise URL per line", "ping_start": "...", "ping_success": "...",
"ping_fail": "...", "clear": ["urls", "ping_fail"]}`; a blank or missing URL
keeps what is stored, a name in `clear` removes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mackuper.notify.channels import check_url
from mackuper.notify.message import DEFAULT_EVENTS, EVENTS
from mackuper.notify.pings import PING_KINDS, check_ping_url

MAX_JOB_URLS = 10
SECRET_NAMES = ("urls", *(f"ping_{kind}" for kind in PING_KINDS))


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


def _url_lines(raw: object) -> list[str]:
    if isinstance(raw, list):
        return [str(item).strip() for item in raw if str(item).strip()]
    if isinstance(raw, str):
        return [line.strip() for line in raw.splitlines() if line.strip()]
    return []


def validate(
    payload: dict[str, Any], existing: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(public settings, secrets, field errors) from the form's `notifications` object.

    Error keys are prefixed "notifications." so the form can place them.
    """
    errors: dict[str, str] = {}
    raw_events = payload.get("events")
    events = dict(DEFAULT_EVENTS)
    if isinstance(raw_events, dict):
        events.update({name: bool(raw_events[name]) for name in EVENTS if name in raw_events})
    clear = payload.get("clear")
    cleared = {str(name) for name in clear} if isinstance(clear, list) else set()
    secrets = {name: value for name, value in existing.items() if name in SECRET_NAMES}
    for name in cleared & set(SECRET_NAMES):
        secrets.pop(name, None)
    urls = _url_lines(payload.get("urls"))
    if len(urls) > MAX_JOB_URLS:
        errors["notifications.urls"] = f"Use at most {MAX_JOB_URLS} URLs."
    for number, url in enumerate(urls, 1):
        problem = check_url(url)
        if problem:
            errors["notifications.urls"] = f"Line {number}: {problem}"
            break
    if urls:
        secrets["urls"] = urls
    for kind in PING_KINDS:
        name = f"ping_{kind}"
        value = payload.get(name)
        if isinstance(value, str) and value.strip():
            problem = check_ping_url(value.strip())
            if problem:
                errors[f"notifications.{name}"] = problem
            secrets[name] = value.strip()
    public = {
        "events": events,
        "global_channels": bool(payload.get("global_channels", True)),
        "urls": len(secrets.get("urls", [])),
        "pings": {
            kind: ("set" if secrets.get(f"ping_{kind}") else "not set") for kind in PING_KINDS
        },
    }
    return public, secrets, errors
