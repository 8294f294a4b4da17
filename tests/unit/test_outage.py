"""The outage retry schedule (core/outage.py): when a failing request is tried again."""

from __future__ import annotations

import threading

import pytest

from mackuper.core.outage import Outage, retry_delay


@pytest.mark.parametrize(
    ("attempt", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (60, 30.0)]
)
def test_retry_delay_doubles_from_one_second_up_to_thirty(attempt: int, delay: float) -> None:
    assert retry_delay(attempt) == delay


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


class FakeStop(threading.Event):
    def __init__(self, time: FakeTime) -> None:
        super().__init__()
        self.time = time

    def wait(self, timeout: float | None = None) -> bool:
        return self.time.wait(timeout or 0.0)


@pytest.mark.parametrize(
    ("budget", "waits"),
    [
        (0, []),
        (1, [1.0]),
        (10, [1.0, 2.0, 4.0, 3.0]),
        (300, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 29.0]),
    ],
)
def test_an_outage_is_retried_until_its_budget_ends_with_a_last_try_at_the_end(
    budget: float, waits: list[float]
) -> None:
    time = FakeTime()
    outage = Outage(budget, FakeStop(time), clock=time.clock)
    while outage.pause():
        pass
    assert time.waits == waits
    assert outage.elapsed() == sum(waits) <= budget


def test_a_stopped_run_does_not_wait_for_the_next_try() -> None:
    stop = threading.Event()
    stop.set()
    assert Outage(300, stop).pause() is False
