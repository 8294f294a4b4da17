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


def test_a_savepoint_holds_the_write_lock_from_its_start(engines: tuple[Engine, Engine]) -> None:
    """Another process cannot commit between the savepoint's read and its write (it
    waits, up to its busy timeout, instead of making this transaction's snapshot stale)."""
    ours, theirs = engines
    with make_session_factory(ours)() as session:
        with session.begin_nested():
            assert session.scalar(text("SELECT count(*) FROM notes")) == 0
            with theirs.connect() as connection:
                connection.exec_driver_sql("PRAGMA busy_timeout=0")  # a worker, not waiting
                with pytest.raises(OperationalError, match="database is locked"):
                    connection.exec_driver_sql("INSERT INTO notes VALUES ('worker heartbeat')")
                    connection.commit()
            session.execute(text("INSERT INTO notes VALUES ('imported job')"))
        session.commit()
    with theirs.begin() as connection:
        connection.exec_driver_sql("PRAGMA busy_timeout=0")
        connection.exec_driver_sql("INSERT INTO notes VALUES ('worker heartbeat')")
        bodies = set(connection.scalars(text("SELECT body FROM notes")))
    assert bodies == {"worker heartbeat", "imported job"}


def test_the_savepoint_nests_in_one_transaction_that_commits_whole(
    engines: tuple[Engine, Engine],
) -> None:
    """The import's use: an IntegrityError inside a savepoint undoes that manifest only,
    and the outer commit keeps the rest. (Before, a savepoint that began the transaction
    committed on its release, so the session's rollback could no longer undo it.)"""
    ours, theirs = engines
    with make_session_factory(ours)() as session:
        with session.begin_nested():
            session.execute(text("INSERT INTO notes VALUES ('first')"))
        with pytest.raises(IntegrityError, match="UNIQUE"), session.begin_nested():
            session.execute(text("INSERT INTO notes VALUES ('first')"))
        with session.begin_nested():
            session.execute(text("INSERT INTO notes VALUES ('second')"))
        session.rollback()
        with session.begin_nested():
            session.execute(text("INSERT INTO notes VALUES ('kept')"))
        session.commit()
    with theirs.begin() as connection:
        connection.exec_driver_sql("PRAGMA busy_timeout=0")  # nothing left holding the lock
        connection.exec_driver_sql("INSERT INTO notes VALUES ('after')")
        bodies = set(connection.scalars(text("SELECT body FROM notes")))
    assert bodies == {"kept", "after"}
