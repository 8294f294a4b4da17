"""Cron schedules: validation, next fire times, and which tick is due now.

Pure functions over APScheduler's CronTrigger, so the worker and the tests share
one notion of time (tests pass their own `now`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


class ScheduleError(ValueError):
    """The cron expression or time zone is not valid."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def parse(expression: str, timezone: str) -> CronTrigger:
    """A trigger for a 5-field cron expression or an @alias; ScheduleError if invalid."""
    text = ALIASES.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"a cron expression has 5 fields (minute hour day month weekday); got {len(fields)}"
        )
    try:
        return CronTrigger.from_crontab(text, timezone=zone(timezone))
    except ScheduleError:
        raise
    except ValueError as error:
        raise ScheduleError(f"invalid cron expression: {error}") from None


def next_fire_times(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after` (aware datetimes)."""
    trigger = parse(expression, timezone)
    times: list[datetime] = []
    previous: datetime | None = None
    cursor = after + timedelta(microseconds=1)
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, cursor)
        if fire is None:
            break
        times.append(fire)
        previous = fire
        cursor = fire + timedelta(microseconds=1)
    return times


def due_tick(
    expression: str, timezone: str, anchor: datetime, now: datetime, grace: timedelta
) -> tuple[datetime | None, datetime]:
    """The tick to run now, if any, and the new anchor.

    Every fire time in (anchor, now] is due; only the latest is run (missed ticks are
    never a burst), and only when it is no older than `grace`. The new anchor is the
    latest tick considered, so each tick is considered once.
    """
    trigger = parse(expression, timezone)
    latest: datetime | None = None
    previous: datetime | None = None
    cursor = anchor + timedelta(microseconds=1)
    while True:
        fire = trigger.get_next_fire_time(previous, cursor)
        if fire is None or fire > now:
            break
        latest = fire
        previous = fire
        cursor = fire + timedelta(microseconds=1)
    if latest is None:
        return None, anchor
    if now - latest > grace:
        return None, latest
    return latest, latest
