"""Engine, sessions and migrations.

SQLite runs in WAL mode with a busy timeout, so a web process and a worker can
share it; PostgreSQL is used as is. Migrations run under a lock (a file lock for
SQLite, an advisory lock for PostgreSQL) so several processes may start at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Result,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.orm import Session, sessionmaker

from mackuper.config import Settings

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATION_LOCK_ID = 0x6D61636B  # "mack"
BUSY_SECONDS = 30
"""How long an SQLite connection waits for another's lock, and for a fresh file's switch
to WAL mode (`_enter_wal`), before it gives up."""


def _private_sqlite_file(database_url: str) -> None:
    """Create the SQLite file for the owner only (0600), or make an existing one so.

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    name = make_url(database_url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if not path.parent.is_dir():
        return
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for companion in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(companion, 0o600)


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        _private_sqlite_file(database_url)
        engine = create_engine(
            database_url, connect_args={"timeout": BUSY_SECONDS, "check_same_thread": False}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_savepoint_takes_the_write_lock)
        return engine
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
    _enter_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _enter_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode=WAL`, tried again while another process opens a fresh file.

    Turning a new database file to WAL needs it to itself, and SQLite answers "database
    is locked" at once, busy timeout or not, when another connection opens it at that
    moment: the web and the worker of a first start, or several containers. In a
    throwaway race (four processes opening a fresh file together, 200 times) 34 of 800
    connections failed so, none with this loop. A file in WAL mode stays so, and the
    pragma then takes no lock.
    """
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_savepoint_takes_the_write_lock(connection: Connection, _name: str | None) -> None:
    """Begin with BEGIN IMMEDIATE when a SAVEPOINT would be a transaction's first statement.

    Python's sqlite3 begins a transaction before an INSERT, UPDATE or DELETE, not
    before a SAVEPOINT, and SQLite makes a SAVEPOINT outside a transaction begin a
    deferred one: its first read takes a snapshot, and once another process has
    committed, a write in it fails at once with "database is locked"
    (SQLITE_BUSY_SNAPSHOT: the busy timeout is not consulted). Holding the write
    lock from the start makes that write wait like any other. CI saw it as a 500
    from the catalog import while a worker started.

    The savepoint now also nests in a real transaction, as SQLAlchemy means it: before,
    releasing a savepoint that had begun the transaction committed it, so the session's
    rollback could not undo it. The price: a savepoint holds the write lock until the
    session commits or rolls back, even one that only reads, so none may wait on
    storage or the network.
    """
    dbapi = connection.connection.dbapi_connection
    if dbapi is not None and not dbapi.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # SQLAlchemy's errors and events


def changed_rows(result: Result[Any]) -> int:
    """Rows changed by an UPDATE or DELETE (the claim and anchor checks rely on it)."""
    cursor: CursorResult[Any] = result  # type: ignore[assignment]
    return cursor.rowcount


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(database_url: str) -> Config:
    # Imported here: Alembic costs a worker ~11 MiB it never needs when serve migrated.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("mackuper") / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@contextmanager
def _migration_lock(settings: Settings, engine: Engine) -> Iterator[None]:
    if settings.is_sqlite:
        lock_path = Path(settings.data_dir) / ".migrate.lock"
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
            connection.commit()


def upgrade(settings: Settings, engine: Engine) -> None:
    """Apply every pending migration; safe when several processes start together."""
    with _migration_lock(settings, engine), engine.begin() as connection:
        config = _alembic_config(settings.database_url)
        config.attributes["connection"] = connection
        from alembic import command

        command.upgrade(config, "heads")
