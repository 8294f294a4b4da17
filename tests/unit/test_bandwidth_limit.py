"""The bandwidth limit's pacing, on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path

import pytest

from mackuper.destinations import registry
from mackuper.destinations.base import Lockable
from mackuper.destinations.limits import BURST_SECONDS, Limited, Pace, in_window, parse_window

MIB = 1024 * 1024


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


@pytest.mark.parametrize(
    ("pieces", "piece_size", "rate", "seconds"),
    [
        (80, 256 * 1024, 20 * MIB, 1.0),  # 20 MiB at 20 MiB/s: one second
        (10, MIB, 2 * MIB, 5.0),
        (1, 4 * MIB, MIB, 4.0),
    ],
)
def test_bytes_pass_at_the_rate_when_sent_as_fast_as_possible(
    pieces: int, piece_size: int, rate: float, seconds: float
) -> None:
    clock = FakeClock()
    pace = Pace(rate, clock, clock.sleep)
    for _ in range(pieces):
        pace.take(piece_size)
    assert clock.slept == pytest.approx(seconds)


def test_an_idle_spell_earns_at_most_a_short_burst() -> None:
    clock = FakeClock()
    pace = Pace(MIB, clock, clock.sleep)
    clock.now += 3600  # an hour without traffic
    pace.take(10 * MIB)
    assert clock.slept == pytest.approx(10 - BURST_SECONDS)


def test_a_slow_sender_is_never_held_back() -> None:
    clock = FakeClock()
    pace = Pace(10 * MIB, clock, clock.sleep)
    for _ in range(20):
        clock.now += 1.0  # the source itself delivers 1 MiB a second
        pace.take(MIB)
    assert clock.slept == 0


def test_a_limited_destination_is_still_its_kind_and_keeps_its_object_lock(
    tmp_path: Path,
) -> None:
    local = registry.build("local", {"path": str(tmp_path), "bandwidth_limit": 5}, {})
    assert isinstance(local, Limited) and local.kind == "local"
    assert local.presign("a", "a", 60) is None
    s3 = registry.build(
        "s3",
        {"bucket": "backups", "object_lock_mode": "GOVERNANCE", "bandwidth_limit": 2.5},
        {"access_key_id": "key", "secret_access_key": "secret"},
    )
    assert isinstance(s3, Limited) and isinstance(s3, Lockable) and s3.lock_mode == "GOVERNANCE"
    until = datetime(2027, 1, 1, tzinfo=UTC)
    s3.retain_until = until  # type: ignore[attr-defined]
    assert s3.inner.retain_until == until  # type: ignore[attr-defined]
    assert not isinstance(registry.build("local", {"path": str(tmp_path)}, {}), Limited)


@pytest.mark.parametrize(
    ("window", "moment", "inside"),
    [
        ("08:00-20:00", "08:00", True),
        ("08:00-20:00", "19:59", True),
        ("08:00-20:00", "20:00", False),
        ("08:00-20:00", "07:59", False),
        ("22:00-06:00", "23:30", True),
        ("22:00-06:00", "05:59", True),
        ("22:00-06:00", "12:00", False),
        ("", "03:00", True),
    ],
)
def test_a_window_holds_from_its_start_to_its_end_also_across_midnight(
    window: str, moment: str, inside: bool
) -> None:
    assert in_window(clock_time.fromisoformat(moment), parse_window(window)) is inside


@pytest.mark.parametrize("text", ["8:00-20:00", "08:00-24:00", "08:00", "08:00-20:00 ", "x"])
def test_a_window_that_is_not_hh_mm_hh_mm_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_window(text)


def test_outside_its_window_the_limit_holds_nothing_back() -> None:
    clock = FakeClock()
    pace = Pace(MIB, clock, clock.sleep, active=lambda: False)
    pace.take(100 * MIB)
    assert clock.slept == 0
