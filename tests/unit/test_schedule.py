"""Cron fire times, including both DST changes in a non-UTC zone, and due ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mackuper.core.schedule import ScheduleError, describe, due_tick, next_fire_times, parse

PARIS = "Europe/Paris"
GRACE = timedelta(minutes=30)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def isos(expression: str, after: datetime, count: int, zone: str = PARIS) -> list[str]:
    return [time.isoformat() for time in next_fire_times(expression, zone, after, count)]


def test_daily_time_skipped_by_spring_forward_fires_once_when_the_clock_jumps() -> None:
    # 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day.
    assert isos("30 2 * * *", utc(2026, 3, 27), 4) == [
        "2026-03-27T02:30:00+01:00",
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_every_quarter_hour_in_the_skipped_hour_collapses_into_one_fire() -> None:
    assert isos("*/15 * * * *", utc(2026, 3, 29, 0, 40), 4) == [
        "2026-03-29T01:45:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:15:00+02:00",
        "2026-03-29T03:30:00+02:00",
    ]


def test_daily_time_in_the_repeated_autumn_hour_fires_once() -> None:
    # 2026-10-25 03:00 CEST goes back to 02:00 CET: 02:30 happens twice.
    assert isos("30 2 * * *", utc(2026, 10, 24), 3) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_hourly_schedule_runs_every_elapsed_hour_through_the_repeated_autumn_hour() -> None:
    # `*` in the hour field follows the clock as it reads: 02:30 comes twice, an
    # hour apart, and an hourly backup never leaves a two-hour gap.
    assert isos("30 * * * *", utc(2026, 10, 24, 23, 0), 4) == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:30:00+01:00",
    ]


def test_hourly_schedule_adds_no_run_when_the_spring_clock_jumps() -> None:
    # 01:30 CET and 03:30 CEST are one hour apart: nothing is due at 03:00.
    assert isos("30 * * * *", utc(2026, 3, 28, 23, 0), 4) == [
        "2026-03-29T00:30:00+01:00",
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-29T04:30:00+02:00",
    ]


def test_due_tick_runs_the_repeated_autumn_hour_like_the_fire_time_list() -> None:
    # The worker reaches the second 02:30 from inside the repeated hour; the list
    # above reaches it from before. Both must agree.
    anchor = utc(2026, 10, 25, 0, 30)  # 02:30 CEST, already run
    tick, _ = due_tick("30 * * * *", PARIS, anchor, utc(2026, 10, 25, 1, 30, 1), GRACE)
    assert tick == utc(2026, 10, 25, 1, 30)  # 02:30 CET


def test_fire_times_are_strictly_after_the_given_instant_during_the_repeated_hour() -> None:
    # 01:10 UTC is 02:10 CET, the second pass of the repeated hour; 02:30 already fired.
    assert isos("30 2 * * *", utc(2026, 10, 25, 1, 10), 1) == ["2026-10-26T02:30:00+01:00"]


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@hourly", "2026-01-01T11:00:00+00:00"),
        ("@daily", "2026-01-02T00:00:00+00:00"),
        ("@weekly", "2026-01-04T00:00:00+00:00"),
        ("@monthly", "2026-02-01T00:00:00+00:00"),
    ],
)
def test_aliases(alias: str, expected: str) -> None:
    assert isos(alias, utc(2026, 1, 1, 10, 5), 1, "UTC") == [expected]


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("* * *", "UTC", "5 fields"),
        ("61 * * * *", "UTC", "invalid cron expression"),
        ("@sometimes", "UTC", "5 fields"),
        ("0 0 31 2 *", "UTC", "never fires"),
        ("0 0 30,31 2 *", "UTC", "never fires"),
        ("0 0 32 * *", "UTC", "invalid cron expression: Bad day-of-month"),
        ("0 0 last * *", "UTC", "invalid cron expression: Bad day-of-month"),
        ("0 0 * * fri-mon", "UTC", "invalid cron expression: Bad day-of-week"),
        ("0 * * * *", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_invalid_schedules_are_refused_with_a_message(
    expression: str, zone: str, message: str
) -> None:
    with pytest.raises(ScheduleError, match=message):
        next_fire_times(expression, zone, utc(2026, 1, 1), 1)


def test_due_tick_runs_the_tick_that_just_passed() -> None:
    tick, anchor = due_tick(
        "*/5 * * * *", "UTC", utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 10, 5, 1), GRACE
    )
    assert tick == anchor == utc(2026, 1, 1, 10, 5)


def test_due_tick_is_none_before_the_next_tick() -> None:
    anchor = utc(2026, 1, 1, 10, 5)
    assert due_tick("*/5 * * * *", "UTC", anchor, utc(2026, 1, 1, 10, 9, 59), GRACE) == (
        None,
        anchor,
    )


def test_missed_ticks_after_downtime_run_once_as_the_latest() -> None:
    tick, _ = due_tick("*/5 * * * *", "UTC", utc(2026, 1, 1, 8, 0), utc(2026, 1, 1, 10, 7), GRACE)
    assert tick == utc(2026, 1, 1, 10, 5)


def test_missed_ticks_older_than_the_grace_window_do_not_run() -> None:
    anchor = utc(2026, 1, 1, 0, 0)
    assert due_tick("0 2 * * *", "UTC", anchor, utc(2026, 1, 1, 9, 0), GRACE) == (None, anchor)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 * * 0", "2026-01-04T00:00:00+00:00"),  # Sunday
        ("0 0 * * 7", "2026-01-04T00:00:00+00:00"),  # Sunday too
        ("0 0 * * 1-5", "2026-01-02T00:00:00+00:00"),  # Friday, the next weekday
        ("0 0 * * 6", "2026-01-03T00:00:00+00:00"),  # Saturday
        ("0 0 * * mon", "2026-01-05T00:00:00+00:00"),
    ],
)
def test_weekdays_count_from_sunday_like_cron(expression: str, expected: str) -> None:
    # 2026-01-01 is a Thursday.
    assert isos(expression, utc(2026, 1, 1, 10, 5), 1, "UTC") == [expected]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # Either day field matching is enough when both are restricted, as in crontab.
        ("0 3 13 * 1", ["2026-01-05", "2026-01-12", "2026-01-13", "2026-01-19"]),
        ("0 3 L * *", ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]),
        ("0 3 * * 5L", ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"]),
        ("0 3 * * 1#2", ["2026-01-12", "2026-02-09", "2026-03-09", "2026-04-13"]),
    ],
    ids=["day-or-weekday", "last-day", "last-friday", "second-monday"],
)
def test_day_fields_follow_cron(expression: str, expected: list[str]) -> None:
    times = next_fire_times(expression, "UTC", utc(2026, 1, 1, 10, 5), 4)
    assert [time.date().isoformat() for time in times] == expected


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 2 * * *", "At 02:00 every day"),
        ("@daily", "At 00:00 every day"),
        ("30 3 * * 7", "At 03:30 on Sunday"),
        ("15 22 * * 1-5", "At 22:15 on Monday through Friday"),
        ("0 3 1 * *", "At 03:00 on the first day of every month"),
        ("0 3 13 * *", "At 03:00 on the 13th day of every month"),
        ("0 3 21 * *", "At 03:00 on the 21st day of every month"),
        ("0 3 22 * *", "At 03:00 on the 22nd day of every month"),
        ("0 3 23 * *", "At 03:00 on the 23rd day of every month"),
        ("0 */6 * * *", "At minute 0 past every sixth hour"),
        ("*/15 * * * *", "Every 15th minute of every hour"),
        ("0 2,14 * * *", "At 02:00 and 14:00 every day"),
        ("0 3 * * 5L", "At 03:00 on the last Friday of the month"),
    ],
)
def test_describe_says_the_schedule_in_english(expression: str, words: str) -> None:
    assert describe(expression) == words


@pytest.mark.parametrize("expression", ["61 * * * *", "* * *", "@sometimes"])
def test_describe_gives_back_an_invalid_expression_unchanged(expression: str) -> None:
    assert describe(expression) == expression


# Clock changes in 2026 (UTC): Paris and New York in spring and autumn, Santiago's
# autumn in April and spring in September.
CLOCK_CHANGES = {
    "Europe/Paris": [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1)],
    "America/New_York": [utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)],
    "America/Santiago": [utc(2026, 4, 5, 3), utc(2026, 9, 6, 4)],
}


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(sorted(CLOCK_CHANGES)),
    change=st.integers(min_value=0, max_value=1),
    offset=st.integers(min_value=-6 * 3600, max_value=6 * 3600),
    expression=st.sampled_from(
        ["30 * * * *", "*/15 * * * *", "30 2 * * *", "0 */2 * * *", "15 0,1,2 * * *", "* * * * *"]
    ),
    fraction=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_next_fire_is_the_same_from_any_instant_before_it(
    zone: str, change: int, offset: int, expression: str, fraction: float
) -> None:
    # The worker searches from wherever its anchor or grace window starts; the
    # list of next runs from now. Near a clock change both must meet the same tick.
    schedule = parse(expression, zone)
    start = CLOCK_CHANGES[zone][change] + timedelta(seconds=offset)
    fire = schedule.next_after(start)
    assert fire is not None and fire > start
    microseconds = int((fire - start) / timedelta(microseconds=1) * fraction)
    later = start + timedelta(microseconds=microseconds)
    assert schedule.next_after(later.astimezone(schedule.zone)) == fire
