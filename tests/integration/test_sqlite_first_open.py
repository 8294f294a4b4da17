"""Processes opening a fresh SQLite file at the same moment all get a connection.

The first connection turns the file to WAL mode, which needs the file to itself, and
SQLite refuses that at once ("database is locked", without its busy timeout) when
another process opens the file meanwhile. CI saw one of four processes starting on an
empty data directory fail so (test_migration_race.py); a first `mackuper serve`
starts its web and its worker together. Here four processes open 30 fresh files in
step: without db.py's retry 5 to 9 of the 120 connections failed (three runs).
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROCESSES = 4
ROUNDS = 30


def _open_in_step(directory: str, barrier: Barrier, results: Queue[list[str]]) -> None:
    """Open each round's fresh file right after the barrier; put the errors met."""
    from sqlalchemy import text  # noqa: PLC0415 (in the spawned process)

    from mackuper.db import make_engine  # noqa: PLC0415

    errors = []
    for round_number in range(ROUNDS):
        engine = make_engine(f"sqlite:///{directory}/{round_number}.db")
        barrier.wait(timeout=60)
        try:
            with engine.connect() as connection:
                mode = connection.scalar(text("PRAGMA journal_mode"))
                if mode != "wal":
                    errors.append(f"round {round_number}: journal mode {mode}")
        except Exception as error:  # noqa: BLE001 - reported to the test
            errors.append(f"round {round_number}: {error}")
        finally:
            engine.dispose()
    results.put(errors)


def test_processes_opening_a_fresh_database_together_all_connect(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results: Queue[list[str]] = context.Queue()
    processes = [
        context.Process(target=_open_in_step, args=(str(tmp_path), barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        errors = [error for _ in processes for error in results.get(timeout=240)]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert errors == []
    assert [process.exitcode for process in processes] == [0] * PROCESSES
