"""Cron schedules: validation, next fire times, which tick is due now, and words.

Pure functions, so the worker and the tests share one notion of time (tests pass
their own `now`).

cronsim (the cron evaluator healthchecks uses) reads the expression in the job's
time zone and follows Debian cron at clock changes:

- a job at a fixed hour and minute ("30 2 * * *") runs on the wall clock: a time
  the spring jump skips fires once, when the clock jumps (03:00); a time the
  autumn change repeats fires once, at its first occurrence;
- a job with `*` in its minute or hour field ("30 * * * *", "0 */6 * * *") is
  matched against the clock as it reads at each moment: an hourly backup also runs
  in the repeated autumn hour (no two-hour gap), and none is added when the clock
  jumps in spring (01:30 CET and 03:30 CEST are an hour apart).

When both day fields are restricted ("0 3 1 * 1") a day matching either runs, as
in every crontab; `L`, `LW`, `5L` and `1#2` (last day, last weekday, last Friday,
second Monday) are understood too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_CHECK_FROM = datetime(2000, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """The cron expression or time zone is not valid."""


def zone(name: str) -> ZoneInfo:
    """The time zone called `name`; ScheduleError if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def _expand(expression: str) -> str:
    """The 5 cron fields of `expression` (aliases expanded); ScheduleError otherwise."""
    text = ALIASES.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(
            "a cron expression has 5 fields (minute hour day month weekday)"
            f" or is one of {', '.join(sorted(ALIASES))}; got {len(fields)} fields"
        )
    return " ".join(fields)


def _check(fields: str) -> None:
    """ScheduleError unless cronsim accepts `fields` and they fire at least once."""
    try:
        first = next(CronSim(fields, _CHECK_FROM), None)
    except CronSimError as error:
        minute, hour, day, _, weekday = fields.split()
        # cronsim says "Bad day-of-month" both for day 32 and for 31 February.
        try:
            CronSim(f"{minute} {hour} {day} * {weekday}", _CHECK_FROM)
            days_exist = str(error) == "Bad day-of-month"
        except CronSimError:
            days_exist = False
        if days_exist:
            raise ScheduleError("this cron expression never fires") from None
        raise ScheduleError(f"invalid cron expression: {error}") from None
    if first is None:
        raise ScheduleError("this cron expression never fires")


class Schedule:
    """A cron expression in a time zone; `next_after` gives fire instants."""

    def __init__(self, expression: str, timezone: str) -> None:
        self.expression = expression
        self.zone = zone(timezone)
        self.fields = _expand(expression)
        _check(self.fields)

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire instant strictly after `after`, in UTC; None if none is left."""
        start = after.astimezone(UTC)
        # Compared in UTC: two times in one zone compare by wall clock, so both passes
        # of a repeated hour would look equal. On the wall clock cronsim reads a
        # repeated hour as its first pass, so from the second pass it may answer a
        # time that has already passed.
        for fire in CronSim(self.fields, start.astimezone(self.zone)):
            if fire.astimezone(UTC) > start:
                return fire.astimezone(UTC)
        return None


@lru_cache(maxsize=1024)
def parse(expression: str, timezone: str) -> Schedule:
    """The schedule for a 5-field cron expression or an @alias; ScheduleError if invalid."""
    return Schedule(expression, timezone)


def next_fire_times(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire instants strictly after `after` (aware, in the schedule's zone)."""
    schedule = parse(expression, timezone)
    times: list[datetime] = []
    cursor = after
    while len(times) < count:
        fire = schedule.next_after(cursor)
        if fire is None:
            break
        times.append(fire.astimezone(schedule.zone))
        cursor = fire
    return times


def due_tick(
    expression: str, timezone: str, anchor: datetime, now: datetime, grace: timedelta
) -> tuple[datetime | None, datetime]:
    """The tick to run now, if any, and the new anchor.

    Every fire time in (anchor, now] is due; only the latest is run (missed ticks are
    never a burst), and only when it is no older than `grace`. The new anchor is the
    latest tick run, so each tick is considered once; ticks older than `grace` are
    never run, so they are not searched for.
    """
    schedule = parse(expression, timezone)
    cursor = max(anchor, now - grace - timedelta(microseconds=1))
    latest: datetime | None = None
    while (fire := schedule.next_after(cursor)) is not None and fire <= now:
        latest = fire
        cursor = fire
    if latest is None:
        return None, anchor
    return latest.astimezone(UTC), latest.astimezone(UTC)


# cronsim spells numbers above nine "21th", "22th", "23th".
_WRONG_ORDINAL = re.compile(r"\b(\d*[02-9])?([123])th\b")


def _ordinal(match: re.Match[str]) -> str:
    suffix = {"1": "st", "2": "nd", "3": "rd"}[match[2]]
    return f"{match[1] or ''}{match[2]}{suffix}"


def describe(expression: str) -> str:
    """The expression in English ("At 02:00 every day"); the expression itself if invalid."""
    try:
        words = CronSim(_expand(expression), _CHECK_FROM).explain()
    except (ScheduleError, CronSimError):
        return expression
    return _WRONG_ORDINAL.sub(_ordinal, words)
