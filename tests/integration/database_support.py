"""Helpers for the database tests that go through the API: jobs of each database kind,
small dump parts, and small databases with the objects that matter."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mackuper.runtime import Runtime
from mackuper.sources import dump, mariadb, postgres, redis, sqlite
from mackuper.sources.base import Entry
from tests.conftest import ApiClient
from tests.integration.restore_support import finished_run, ok
from tests.servers.mariadb import MariaDBServer, RedisServer

SMALL_PART = 256 << 10
"""Dump parts this small make every test dump several parts, so joining them is tested."""


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every database source cuts its dumps into `SMALL_PART` byte parts."""
    original = dump.dump_entries

    def small(*args: Any, **kwargs: Any) -> Iterator[Entry]:
        if len(args) > 5:
            args = (*args[:5], SMALL_PART, *args[6:])
        else:
            kwargs["part_size"] = SMALL_PART
        return original(*args, **kwargs)

    for module in (postgres, mariadb, sqlite, redis):
        monkeypatch.setattr(module, "dump_entries", small)


def database_backup(
    api: ApiClient,
    runtime: Runtime,
    kind: str,
    source: dict[str, Any],
    destination_id: int,
    archive_format: str = "tar.zst",
    **extra: Any,
) -> dict[str, Any]:
    """Make a job of `kind` through the API, run it in this process; its one backup."""
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": f"{kind} database",
            "source_kind": kind,
            "source": source,
            "archive_format": archive_format,
            "schedule": "",
            "destination_ids": [destination_id],
            **extra,
        },
    )["job"]
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
    assert run["status"] == "success", run["error"]
    (backup,) = ok(api, "GET", f"/api/backups?job_id={job['id']}")["backups"]
    return backup  # type: ignore[no-any-return]


def fill_shop(server: MariaDBServer, database: str = "shop", big_rows: int = 3000) -> None:
    """Unicode, BLOBs, a view, a function, a trigger, an event and a bigger table."""
    server.sql(
        """
        CREATE DATABASE the_database CHARACTER SET utf8mb4;
        USE the_database;
        CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(100), photo BLOB)
          CHARACTER SET utf8mb4;
        INSERT INTO people VALUES (1, 'Zoë Ångström', x'00ff10'),
                                  (2, '山田 太郎 🦆', NULL),
                                  (3, 'tab\\tnew\\nline ''quote''', x'');
        CREATE VIEW named AS SELECT name FROM people WHERE photo IS NOT NULL;
        CREATE FUNCTION shout(word VARCHAR(100)) RETURNS VARCHAR(110) DETERMINISTIC
          RETURN CONCAT(UPPER(word), '!');
        CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100));
        CREATE TRIGGER people_added AFTER INSERT ON people
          FOR EACH ROW INSERT INTO audit (note) VALUES (NEW.name);
        CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit;
        CREATE TABLE big (id INT PRIMARY KEY, payload TEXT, data BLOB);
        INSERT INTO big
          SELECT seq, REPEAT(MD5(seq), 5), UNHEX(REPEAT(MD5(seq * 7), 4))
          FROM seq_1_to_BIG_ROWS;
        """.replace("the_database", database).replace("BIG_ROWS", str(big_rows))
    )


def mariadb_job_source(server: MariaDBServer, *databases: str) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "username": server.user,
        "password": server.password,
        "databases": list(databases),
    }


def redis_job_source(server: RedisServer) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, "password": server.password}


def fill_redis(server: RedisServer) -> None:
    server.cli("SET", "greeting", "Grüße 🦆")
    server.cli("HSET", "user:1", "name", "Zoë", "city", "Łódź")
    server.cli("RPUSH", "queue", "a", "b", "c")
    server.cli("ZADD", "scores", "1.5", "alice", "2", "bob")
    subprocess.run(  # noqa: S603
        ["redis-cli", "-h", server.host, "-p", str(server.port), "--no-auth-warning"]
        + ["-x", "SET", "blob"],
        input=os.urandom(600 << 10).hex().encode(),  # 1.2 MB: several small parts
        check=True,
        capture_output=True,
        env={**os.environ, "REDISCLI_AUTH": server.password},
    )


def make_sqlite(path: Path, rows: int = 3000) -> None:
    """A WAL database with Unicode, BLOBs, a view, a trigger and a bigger table."""
    # Closed here, not when collected: Python 3.11's sqlite3 connection is in a reference
    # cycle (its statement cache), so a dropped one closed, and checkpointed its WAL into
    # the file, whenever the garbage collector ran (once in the middle of a test that
    # compares the file's bytes before and after a read-only probe).
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(
            """
            CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, photo BLOB);
            INSERT INTO people VALUES (1, 'Zoë Ångström', x'00ff10'), (2, '山田 🦆', NULL);
            CREATE VIEW named AS SELECT name FROM people WHERE photo IS NOT NULL;
            CREATE TABLE big (id INTEGER PRIMARY KEY, payload TEXT, data BLOB);
            CREATE TRIGGER no_empty BEFORE INSERT ON people
              WHEN NEW.name = '' BEGIN SELECT RAISE(ABORT, 'empty'); END;
            """
        )
        connection.executemany(
            "INSERT INTO big VALUES (?, ?, ?)",
            (
                (n, hashlib.sha256(str(n).encode()).hexdigest() * 3, n.to_bytes(8, "big") * 8)
                for n in range(rows)
            ),
        )


def sqlite_fingerprint(path: Path) -> dict[str, object]:
    """Each table's and view's rows as one hash, and the schema's SQL."""
    result: dict[str, object] = {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        for table in ("people", "big", "named"):
            digest = hashlib.sha256()
            for row in connection.execute(f"SELECT * FROM {table} ORDER BY 1"):  # noqa: S608
                digest.update(repr(row).encode())
            result[table] = digest.hexdigest()
        result["schema"] = connection.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY name"
        ).fetchall()
    return result
