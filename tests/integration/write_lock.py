"""Whether another process could write to the catalog at this moment (SQLite).

SQLite has one write lock: a request or run that holds it across slow work (storage,
network, password hashing) keeps every worker's progress, claims and heartbeats
waiting. Tests call `write_now` from inside such slow calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mackuper.db import make_engine
from mackuper.runtime import Runtime


@contextmanager
def another_writer(runtime: Runtime) -> Iterator[Callable[[], None]]:
    """A function that takes and drops the write lock through its own connection, as a
    worker would, without waiting: it raises OperationalError while someone holds it."""
    engine = make_engine(runtime.settings.database_url)
    assert engine.dialect.name == "sqlite"

    def write_now() -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA busy_timeout=0")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            connection.exec_driver_sql("ROLLBACK")

    try:
        yield write_now
    finally:
        engine.dispose()
