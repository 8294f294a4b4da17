"""SQLite sources: a live WAL database dumped while a writer commits, restored by sqlite3 alone.

The restored copy is one snapshot: every transfer between accounts is whole (the sum
holds) and the event counter matches the events, while the writer kept committing
during the backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.base import SourceError
from mackuper.sources.sqlite import SQLiteSource, member_name
from tests.integration.engine_support import RecordingHooks

pytestmark = pytest.mark.integration

ACCOUNTS = 40
BIG_ROWS = 60_000


def make_database(path: Path) -> None:
    # closing: `with connection` only commits, and the open connection kept its lock
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(
            """
            CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, photo BLOB);
            INSERT INTO people VALUES (1, 'Zoë Ångström', x'00ff10'),
                                      (2, '山田 太郎 🦆', NULL),
                                      (3, 'tab	new
            line ''quote''', x'');
            CREATE VIEW named AS SELECT name FROM people WHERE photo IS NOT NULL;
            CREATE TABLE big (id INTEGER PRIMARY KEY, payload TEXT, data BLOB);
            CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
            CREATE TABLE events (id INTEGER PRIMARY KEY, note TEXT);
            CREATE TABLE event_count (n INTEGER NOT NULL);
            INSERT INTO event_count VALUES (0);
            CREATE TRIGGER no_negative BEFORE UPDATE ON accounts
              WHEN NEW.balance < -1000000 BEGIN SELECT RAISE(ABORT, 'too low'); END;
            """
        )
        connection.executemany(
            "INSERT INTO big VALUES (?, ?, ?)",
            (
                (n, hashlib.sha256(str(n).encode()).hexdigest() * 3, n.to_bytes(8, "big") * 8)
                for n in range(BIG_ROWS)
            ),
        )
        connection.executemany(
            "INSERT INTO accounts VALUES (?, 1000)", ((n,) for n in range(ACCOUNTS))
        )


def table_digest(connection: sqlite3.Connection, table: str) -> str:
    digest = hashlib.sha256()
    for row in connection.execute(f"SELECT * FROM {table} ORDER BY 1"):  # noqa: S608 - ours
        digest.update(repr(row).encode())
    return digest.hexdigest()


@dataclass
class Writer:
    path: Path
    stop: threading.Event
    commits: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                step = 0
                while not self.stop.is_set():
                    step += 1
                    source, target = step % ACCOUNTS, (step * 7) % ACCOUNTS
                    connection.execute("BEGIN IMMEDIATE")
                    connection.execute(
                        "UPDATE accounts SET balance = balance - 3 WHERE id = ?", (source,)
                    )
                    connection.execute(
                        "UPDATE accounts SET balance = balance + 3 WHERE id = ?", (target,)
                    )
                    connection.execute("INSERT INTO events (note) VALUES (?)", (f"t{step}",))
                    connection.execute("UPDATE event_count SET n = n + 1")
                    connection.execute("COMMIT")
                    self.commits += 1
            finally:
                connection.close()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


def backup(source: SQLiteSource, directory: Path) -> RecordingHooks:
    hooks = RecordingHooks()
    plan = BackupPlan(
        job_id=1,
        job_slug="sqlite",
        job_name="SQLite",
        run_id=1,
        archive_format="tar.zst",
        compression_level=None,
        source=source,
        destinations={1: LocalDestination(str(directory))},
        started_at=datetime.now(UTC),
    )
    run_backup(plan, hooks)
    return hooks


def test_sqlite_live_wal_database_restores_with_sqlite3_alone_as_one_snapshot(
    tmp_path: Path,
) -> None:
    database = tmp_path / "app.db"
    make_database(database)
    stop = threading.Event()
    writer = Writer(database, stop)
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        while writer.commits < 20 and writer.error is None:
            stop.wait(0.01)
        before = writer.commits
        source = SQLiteSource([str(database)], part_size=1 << 20)
        backup(source, tmp_path / "backups")
        during = writer.commits - before
    finally:
        stop.set()
        thread.join()
    assert writer.error is None
    assert during > 0, "the writer was blocked for the whole backup"
    assert source.dumped[0]["parts"] > 5

    archive = next((tmp_path / "backups").rglob("*.tar.zst"))
    restored_path = tmp_path / "restored.db"
    member = member_name(str(database))
    command = f"tar -xOf '{archive}' --wildcards '{member}.part*' | sqlite3 -bail '{restored_path}'"
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, timeout=120)  # noqa: S603, S607

    with sqlite3.connect(restored_path) as restored, sqlite3.connect(database) as original:
        (total,) = restored.execute("SELECT sum(balance) FROM accounts").fetchone()
        counted = restored.execute(
            "SELECT (SELECT n FROM event_count), (SELECT count(*) FROM events)"
        ).fetchone()
        assert total == ACCOUNTS * 1000
        assert counted[0] == counted[1] >= before
        for table in ("people", "big", "named"):
            assert table_digest(restored, table) == table_digest(original, table), table
        triggers = "SELECT sql FROM sqlite_master WHERE type = 'trigger'"
        assert restored.execute(triggers).fetchall() == original.execute(triggers).fetchall()


def test_sqlite_missing_database_fails_the_run_and_publishes_nothing(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        backup(SQLiteSource([str(tmp_path / "missing.db")]), tmp_path / "backups")
    assert not (tmp_path / "missing.db").exists()
    assert [path for path in (tmp_path / "backups").rglob("*") if path.is_file()] == []


def _locked(path: Path) -> sqlite3.Connection:
    """A connection holding `path` locked against readers until it commits: an
    exclusive-mode WAL writer in the middle of a transaction."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO people VALUES (4, 'locked', NULL)")
    return holder


def test_a_dump_that_could_not_read_fails_the_run_and_stores_nothing(tmp_path: Path) -> None:
    """sqlite3's .dump on a database it cannot lock writes an ERROR comment and
    `ROLLBACK; -- due to errors`, and exits 0: that used to be stored as the backup."""
    database = tmp_path / "app.db"
    make_database(database)
    holder = _locked(database)
    try:
        source = SQLiteSource([str(database)], busy_ms=200)
        with pytest.raises(SourceError) as raised:
            backup(source, tmp_path / "backups")
    finally:
        holder.close()
    assert str(raised.value) == (
        f"sqlite3 {database} did not complete the dump: ERROR: (5) database is locked"
    )
    assert source.dumped == []
    assert [path for path in (tmp_path / "backups").rglob("*") if path.is_file()] == []


def test_a_dump_waits_for_a_lock_held_for_a_moment(tmp_path: Path) -> None:
    """A writer holds the lock for a second (in WAL mode a checkpoint can, for less):
    the dump waits for it instead of failing at once, and restores with sqlite3."""
    database = tmp_path / "app.db"
    make_database(database)
    holder = _locked(database)
    release = threading.Timer(1.0, lambda: (holder.execute("COMMIT"), holder.close()))
    release.start()
    try:
        source = SQLiteSource([str(database)], busy_ms=20_000)
        backup(source, tmp_path / "backups")
    finally:
        release.join()
    archive = next((tmp_path / "backups").rglob("*.tar.zst"))
    restored_path = tmp_path / "restored.db"
    member = member_name(str(database))
    dump = subprocess.run(
        ["tar", "-xO", "--zstd", "-f", str(archive), "--wildcards", f"{member}.part*"],
        check=True,
        capture_output=True,
    ).stdout
    assert dump.endswith(b"COMMIT;\n")
    subprocess.run(["sqlite3", str(restored_path)], input=dump, check=True)
    with sqlite3.connect(restored_path) as restored, sqlite3.connect(database) as original:
        for table in ("people", "big", "accounts"):
            assert table_digest(restored, table) == table_digest(original, table), table


def test_a_database_with_a_damaged_schema_fails_the_run(tmp_path: Path) -> None:
    """Page 1 claims more schema cells than it has: sqlite3's .dump writes CORRUPTION
    ERROR comments, ends COMMIT; as a good dump does and exits 0; the run fails and
    stores nothing."""
    database = tmp_path / "app.db"
    make_database(database)
    data = bytearray(database.read_bytes())
    data[103:105] = b"\xff\xff"  # page 1's b-tree header (after the 100-byte file header)
    database.write_bytes(bytes(data))
    source = SQLiteSource([str(database)])
    with pytest.raises(SourceError, match="did not complete the dump: CORRUPTION ERROR"):
        backup(source, tmp_path / "backups")
    assert [path for path in (tmp_path / "backups").rglob("*") if path.is_file()] == []
