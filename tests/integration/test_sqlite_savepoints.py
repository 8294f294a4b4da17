"""A SAVEPOINT on SQLite takes the write lock, so a transaction that reads and then
writes inside it waits for another process's write instead of failing.

CI saw `POST /api/import` answer 500 "database is locked" 24 ms after a worker
started: the import opens a savepoint per manifest, reads the jobs table in it and
then inserts a job. Python's sqlite3 begins a transaction before an INSERT but not
before a SAVEPOINT, so the savepoint began a read transaction; once the worker had
committed, that snapshot was stale and SQLite refuses to upgrade it without calling
the busy handler (SQLITE_BUSY_SNAPSHOT), whatever the busy timeout says.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from mackuper.db import make_engine, make_session_factory


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    url = f"sqlite:///{tmp_path / 'mackuper.db'}"
    first, second = make_engine(url), make_engine(url)
    with first.begin() as connection:
        connection.execute(text("CREATE TABLE notes (body TEXT UNIQUE)"))
    yield first, second
    first.dispose()
    second.dispose()


def test_a_write_after_a_read_in_a_savepoint_waits_for_another_writer(
    engines: tuple[Engine, Engine],
) -> None:
    ours, theirs = engines
    other_wrote = threading.Event()
    errors: list[OperationalError] = []

    def other_process_writes() -> None:
        try:
            with theirs.begin() as connection:
                connection.execute(text("INSERT INTO notes VALUES ('worker heartbeat')"))
        except OperationalError as error:  # reported to the test below
            errors.append(error)
        finally:
            other_wrote.set()

    with make_session_factory(ours)() as session:
        with session.begin_nested():
            assert session.scalar(text("SELECT count(*) FROM notes")) == 0
            writer = threading.Thread(target=other_process_writes)
            writer.start()
            # With the write lock held since the savepoint, the other write waits
            # for our commit; without it, it commits at once and our snapshot is stale.
            waited = not other_wrote.wait(1.0)
            session.execute(text("INSERT INTO notes VALUES ('imported job')"))
        session.commit()
    writer.join(35)

    assert waited, "the other process wrote inside our savepoint's read-then-write"
    assert errors == []
    with ours.connect() as connection:
        bodies = set(connection.scalars(text("SELECT body FROM notes")))
    assert bodies == {"worker heartbeat", "imported job"}


def test_a_failed_savepoint_rolls_back_only_itself_and_the_lock_is_released(
    engines: tuple[Engine, Engine],
) -> None:
    """The import's use: an IntegrityError inside a savepoint undoes that manifest only."""
    ours, theirs = engines
    with make_session_factory(ours)() as session:
        session.execute(text("INSERT INTO notes VALUES ('first')"))
        with pytest.raises(IntegrityError, match="UNIQUE"), session.begin_nested():
            session.execute(text("INSERT INTO notes VALUES ('first')"))
        with session.begin_nested():
            session.execute(text("INSERT INTO notes VALUES ('second')"))
        session.commit()
    with theirs.begin() as connection:
        connection.execute(text("INSERT INTO notes VALUES ('after')"))
        bodies = set(connection.scalars(text("SELECT body FROM notes")))
    assert bodies == {"first", "second", "after"}


def test_a_savepoint_that_only_reads_leaves_no_lock_behind(
    engines: tuple[Engine, Engine],
) -> None:
    ours, theirs = engines
    with make_session_factory(ours)() as session:
        with session.begin_nested():
            session.scalar(text("SELECT count(*) FROM notes"))
        session.commit()
        with theirs.connect() as connection:
            connection.execute(text("PRAGMA busy_timeout=0"))
            connection.execute(text("INSERT INTO notes VALUES ('not blocked')"))
            connection.commit()
