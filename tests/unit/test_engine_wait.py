"""Waiting for a started container: healthy with a health check, running without one,
a clear error when it exits or never gets there (a stub engine behind our own calls)."""

from __future__ import annotations

from typing import Any

import pytest

from mackuper.sources.engine import EngineError, wait_ready


class StubEngine:
    """`client.api.inspect_container` answering the given states one after another."""

    def __init__(self, states: list[dict[str, Any]], health: bool) -> None:
        self.states = states
        self.config = {"Healthcheck": {"Test": ["CMD-SHELL", "true"]}} if health else {}
        self.api = self

    def inspect_container(self, _container: str) -> dict[str, Any]:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"State": state, "Config": self.config}


def running(health: str = "") -> dict[str, Any]:
    return {"Status": "running", "Health": {"Status": health}}


def test_a_container_with_a_health_check_is_waited_for_until_healthy() -> None:
    engine = StubEngine([running("starting"), running("starting"), running("healthy")], True)
    assert wait_ready(engine, "db", 10, sleep=lambda _s: None) == "healthy"
    assert engine.states == [running("healthy")]


def test_a_container_without_a_health_check_is_ready_when_it_runs() -> None:
    engine = StubEngine([{"Status": "created"}, running()], False)
    assert wait_ready(engine, "proxy", 10, sleep=lambda _s: None) == "running"


def test_a_container_that_exits_after_its_start_is_an_error() -> None:
    engine = StubEngine([{"Status": "exited", "ExitCode": 3}], True)
    with pytest.raises(EngineError, match="exited \\(status 3\\)"):
        wait_ready(engine, "app", 10, sleep=lambda _s: None)


def test_a_container_never_healthy_is_an_error_naming_its_health() -> None:
    engine = StubEngine([running("unhealthy")], True)
    with pytest.raises(EngineError, match="not ready within 0 s \\(health unhealthy\\)"):
        wait_ready(engine, "app", 0, sleep=lambda _s: None)
