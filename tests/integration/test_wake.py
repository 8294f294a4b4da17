"""Queuing a run, and the end of one, wake the workers at once (runs/wake.py), on SQLite
and PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from mackuper.models import Run, RunKind, RunStatus
from mackuper.runs import wake
from mackuper.runs.lifecycle import execute_run
from mackuper.runs.wake import WakeListener, commit_and_wake
from mackuper.runtime import Runtime

WAIT = 20.0
"""Generous for a loaded machine; a missed wake-up would never come at all."""


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'mackuper.db'}")
    yield engine
    engine.dispose()


def _listening(engine: Engine) -> tuple[WakeListener, threading.Event]:
    event = threading.Event()
    listener = WakeListener(engine, event)
    listener.start()
    return listener, event


def test_a_commit_on_sqlite_wakes_a_listening_worker(sqlite_engine: Engine) -> None:
    listener, event = _listening(sqlite_engine)
    try:
        assert not event.is_set()
        with Session(sqlite_engine) as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            commit_and_wake(session)
        assert event.wait(WAIT)
    finally:
        listener.close()
    assert not list(Path(str(sqlite_engine.url.database) + ".wake").glob("*.sock"))


def test_closing_a_sqlite_listener_does_not_wait_for_its_receive_timeout(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wake, "LISTEN_TIMEOUT", 60.0)
    listener, _event = _listening(sqlite_engine)
    started = time.monotonic()
    listener.close()
    assert time.monotonic() - started < 30  # the thread's recv returned at once
    assert listener._thread is not None and not listener._thread.is_alive()


def test_a_database_path_too_long_for_a_socket_uses_the_short_fallback(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    engine = create_engine(f"sqlite:///{deep / 'mackuper.db'}")
    listener, event = _listening(engine)
    try:
        fallback = wake._fallback_directory((deep / "mackuper.db").resolve())
        assert list(fallback.glob("*.sock")), "the listener bound nowhere"
        with Session(engine) as session:
            commit_and_wake(session)
        assert event.wait(WAIT)
    finally:
        listener.close()
        engine.dispose()


def test_a_dead_workers_socket_is_removed_and_the_others_still_woken(
    sqlite_engine: Engine,
) -> None:
    listener, event = _listening(sqlite_engine)
    directory = Path(str(sqlite_engine.url.database) + ".wake")
    dead = directory / "1-deadbeef.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
        gone.bind(str(dead))  # bound, then closed without unlinking: a killed worker
    try:
        assert wake.poke_sqlite_workers(sqlite_engine.url) == 1
        assert event.wait(WAIT)
        assert not dead.exists()
    finally:
        listener.close()


def test_postgres_wakes_on_commit_and_not_on_rollback(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    listener, event = _listening(engine)
    try:
        assert event.wait(WAIT), "the listener never connected"  # it looks once on connecting
        event.clear()
        with Session(engine) as session:
            session.execute(text("SELECT 1"))
            session.execute(text("SELECT pg_notify(:c, '')"), {"c": wake.CHANNEL})
            session.rollback()
        assert not event.wait(2), "a rolled-back transaction woke the worker"
        with Session(engine) as session:
            commit_and_wake(session)
        assert event.wait(WAIT)
    finally:
        listener.close()
        engine.dispose()


def test_closing_a_postgres_listener_does_not_wait_for_its_notifies_timeout(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wake, "LISTEN_TIMEOUT", 60.0)
    engine = create_engine(postgres_url)
    listener, event = _listening(engine)
    try:
        assert event.wait(WAIT), "the listener never connected"
        started = time.monotonic()
        listener.close()
        assert time.monotonic() - started < 30  # its notifies() returned at once
        assert listener._thread is not None and not listener._thread.is_alive()
    finally:
        listener.close()
        engine.dispose()


def test_the_end_of_a_run_wakes_the_workers(runtime: Runtime) -> None:
    # A run of the same job queued for a worker with another label, or waiting for the
    # slot this run frees, is taken at once and not at that worker's next poll.
    with runtime.sessions() as session:
        run = Run(
            job_name="Gone",
            kind=RunKind.VERIFY,
            status=RunStatus.RUNNING,
            details={"artifact_id": 404},
        )
        session.add(run)
        session.commit()
        run_id = run.id
    listener, event = _listening(runtime.engine)
    try:
        outcome = execute_run(runtime, run_id, threading.Event())
        assert event.wait(WAIT)
    finally:
        listener.close()
    assert outcome.status is RunStatus.FAILED
    with runtime.sessions() as session:
        assert session.get_one(Run, run_id).status is RunStatus.FAILED
