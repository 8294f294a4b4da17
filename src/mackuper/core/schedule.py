"""Cron schedules: validation, next fire times, and which tick is due now.

Pure functions, so the worker and the tests share one notion of time (tests pass
their own `now`).

Cron fields are matched against the job's wall clock, and each matching wall-clock
time becomes one instant:

- a time that does not exist (the hour skipped when clocks go forward) fires once,
  at the first valid instant after it (the moment the clock jumps);
- a time that exists twice (the hour repeated when clocks go back) fires once, at
  its first occurrence.

APScheduler's CronTrigger only matches the fields: it is given wall-clock times
labelled UTC, where no clock ever jumps. (Used with a real zone it fired the
non-existent 02:30 and, on the repeated hour, returned the same time forever.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
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

_SEARCH_LIMIT = 100_000
"""Wall-clock matches examined per fire time at most (a guard, never reached)."""


class ScheduleError(ValueError):
    """The cron expression or time zone is not valid."""


def zone(name: str) -> ZoneInfo:
    """The time zone called `name`; ScheduleError if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday_names(field: str) -> str:
    """Cron's numeric weekdays (0 or 7 = Sunday) as names: APScheduler 3 counts from Monday."""
    if field == "*" or not any(character.isdigit() for character in field):
        return field
    days: set[int] = set()
    for token in field.split(","):
        span, _, step_text = token.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if span == "*":
                low, high = 0, 6
            elif "-" in span:
                first, last = span.split("-", 1)
                low, high = int(first), int(last)
            else:
                low = high = int(span)
        except ValueError:
            raise ScheduleError(f"invalid weekday {token!r}; use 0-7 or sun-sat") from None
        if not (0 <= low <= high <= 7 and step >= 1):
            raise ScheduleError(f"invalid weekday {token!r}; use 0-7 or sun-sat")
        days.update(range(low, high + 1, step))
    return ",".join(dict.fromkeys(_WEEKDAYS[day] for day in sorted(days)))


class Schedule:
    """A cron expression in a time zone; `next_after` gives fire instants."""

    def __init__(self, expression: str, timezone: str) -> None:
        self.expression = expression
        self.zone: tzinfo = zone(timezone)
        text = ALIASES.get(expression.strip().lower(), expression.strip())
        fields = text.split()
        if len(fields) != 5:
            raise ScheduleError(
                "a cron expression has 5 fields (minute hour day month weekday)"
                f" or is one of {', '.join(sorted(ALIASES))}; got {len(fields)} fields"
            )
        minute, hour, day, month, weekday = fields
        try:
            self._wall = CronTrigger(
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=_weekday_names(weekday),
                timezone=UTC,
            )
        except ValueError as error:
            raise ScheduleError(f"invalid cron expression: {error}") from None
        # A valid expression may still never match (31 February).
        if self._wall.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise ScheduleError("this cron expression never fires")

    def _wall_clock(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def _instant(self, wall: datetime) -> datetime:
        """The instant a matching wall-clock time fires (first occurrence, or gap end)."""
        candidate = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if self._wall_clock(candidate) == wall:
            return candidate
        # Skipped by a forward jump: fire when the clock jumps past it.
        low = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        high = candidate
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if self._wall_clock(middle) > wall:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0) if high.microsecond else high

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire instant strictly after `after` (aware), or None if none is left."""
        offsets = [
            offset
            for moment in (after - timedelta(days=1), after, after + timedelta(days=1))
            if (offset := moment.astimezone(self.zone).utcoffset()) is not None
        ]
        # No wall-clock time before this one can fire after `after`.
        start = after.astimezone(UTC).replace(tzinfo=None) + min(offsets)
        cursor = start.replace(tzinfo=UTC)
        previous: datetime | None = None
        for _ in range(_SEARCH_LIMIT):
            match = self._wall.get_next_fire_time(previous, cursor)
            if match is None:
                return None
            instant = self._instant(match.replace(tzinfo=None))
            if instant > after:
                return instant
            previous = match
            cursor = match + timedelta(seconds=1)
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
