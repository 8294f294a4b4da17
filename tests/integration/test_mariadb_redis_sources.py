"""MariaDB and Redis sources against throwaway servers, restored by their own tools alone.

MariaDB: `tar -xOf ... 'mariadb/shop.sql.part*' | mariadb shop_copy`, then every
table's CHECKSUM, the view, the function, the trigger and the event compare equal.
Redis: the joined parts are a dump.rdb a new redis-server starts from, and its
DEBUG DIGEST (one hash of the whole data set) equals the original's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.base import Source, SourceError
from mackuper.sources.mariadb import MariaDBSource, member_name
from mackuper.sources.redis import NAME as REDIS_NAME
from mackuper.sources.redis import RedisSource
from tests.integration.engine_support import RecordingHooks
from tests.servers.mariadb import MariaDBServer, RedisServer, running_mariadb, running_redis

pytestmark = pytest.mark.integration

BIG_ROWS = 60_000


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBServer]:
    with running_mariadb() as server:
        server.sql(
            """
            CREATE DATABASE shop CHARACTER SET utf8mb4;
            USE shop;
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
            """.replace("BIG_ROWS", str(BIG_ROWS))
        )
        yield server


def backup(source: Source, directory: Path) -> RecordingHooks:
    hooks = RecordingHooks()
    plan = BackupPlan(
        job_id=1,
        job_slug="db",
        job_name="Databases",
        run_id=1,
        archive_format="tar.zst",
        compression_level=None,
        source=source,
        destinations={1: LocalDestination(str(directory))},
        started_at=datetime.now(UTC),
    )
    run_backup(plan, hooks)
    return hooks


def joined(archive: Path, member: str, command: str) -> None:
    """The README's restore: tar joins the parts on stdout into `command`."""
    pipeline = f"tar -xOf '{archive}' --wildcards '{member}.part*' | {command}"
    subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], check=True, timeout=300)  # noqa: S603, S607


def fingerprint(server: MariaDBServer, database: str) -> list[str]:
    return [
        server.sql("CHECKSUM TABLE people, audit, big", database).replace(database + ".", ""),
        server.sql("SELECT * FROM named ORDER BY name", database),
        server.sql("SELECT shout('héllo')", database),
        server.sql(
            f"SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{database}'"  # noqa: E501, S608
        ),
        server.sql(
            f"SELECT EVENT_NAME, EVENT_DEFINITION FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{database}'"  # noqa: E501, S608
        ),
    ]


def mariadb_source(server: MariaDBServer, password: str | None = None) -> MariaDBSource:
    return MariaDBSource(
        server.host,
        server.port,
        server.user,
        server.password if password is None else password,
        databases=["shop"],
        part_size=1 << 20,
    )


def test_mariadb_dump_in_parts_restores_with_the_mariadb_client_alone(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    source = mariadb_source(mariadb)
    hooks = backup(source, tmp_path / "backups")
    assert source.dumped[0]["parts"] > 5
    assert mariadb.password not in hooks.messages()
    archive = next((tmp_path / "backups").rglob("*.tar.zst"))
    mariadb.sql("CREATE DATABASE shop_copy CHARACTER SET utf8mb4")
    joined(
        archive,
        member_name("shop"),
        f"mariadb --no-defaults --socket={mariadb.socket} -uroot"
        " --default-character-set=utf8mb4 shop_copy",
    )
    assert fingerprint(mariadb, "shop_copy") == fingerprint(mariadb, "shop")


def test_mariadb_wrong_password_fails_the_run_and_publishes_nothing(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="Access denied") as raised:
        backup(mariadb_source(mariadb, "not the password"), tmp_path / "backups")
    assert "not the password" not in str(raised.value)
    assert [path for path in (tmp_path / "backups").rglob("*") if path.is_file()] == []


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        server.cli("SET", "greeting", "Grüße 🦆")
        server.cli("HSET", "user:1", "name", "Zoë", "city", "Łódź")
        server.cli("RPUSH", "queue", "a", "b", "c")
        server.cli("SADD", "tags", "x", "y")
        server.cli("ZADD", "scores", "1.5", "alice", "2", "bob")
        for index in range(4):
            value = os.urandom(1 << 20).hex()  # 2 MiB of text each, so several parts
            subprocess.run(  # noqa: S603
                ["redis-cli", "-h", server.host, "-p", str(server.port), "--no-auth-warning"]
                + ["-x", "SET", f"blob:{index}"],
                input=value.encode(),
                check=True,
                capture_output=True,
                env={**os.environ, "REDISCLI_AUTH": server.password},
            )
        yield server


def test_redis_snapshot_in_parts_is_a_dump_rdb_redis_starts_from(
    redis: RedisServer, tmp_path: Path
) -> None:
    source = RedisSource(redis.host, redis.port, password=redis.password, part_size=1 << 20)
    hooks = backup(source, tmp_path / "backups")
    assert source.dumped[0]["parts"] > 3
    assert redis.password not in hooks.messages()
    archive = next((tmp_path / "backups").rglob("*.tar.zst"))
    rdb = tmp_path / "dump.rdb"
    joined(archive, REDIS_NAME, f"cat > '{rdb}'")
    with running_redis(rdb) as restored:
        assert restored.cli("DBSIZE") == redis.cli("DBSIZE")
        assert restored.cli("DEBUG", "DIGEST") == redis.cli("DEBUG", "DIGEST")
        assert restored.cli("GET", "greeting").strip() == "Grüße 🦆"


def test_redis_wrong_password_fails_the_run_and_publishes_nothing(
    redis: RedisServer, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="AUTH failed"):
        backup(RedisSource(redis.host, redis.port, password="wrong"), tmp_path / "backups")
    assert [path for path in (tmp_path / "backups").rglob("*") if path.is_file()] == []
