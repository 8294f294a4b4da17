"""The "Test connection" of MariaDB, SQLite and Redis sources, against the real servers.

Each answer names the server version, what it holds and the dump tool this worker
has; a wrong password and an unreachable server answer ok=false with the server's own
reason, and the password is in no answer.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ApiClient
from tests.integration.database_support import (
    fill_redis,
    fill_shop,
    make_sqlite,
    mariadb_job_source,
    redis_job_source,
)
from tests.integration.restore_support import ok
from tests.servers.mariadb import MariaDBServer, RedisServer, running_mariadb, running_redis

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBServer]:
    with running_mariadb() as server:
        fill_shop(server, big_rows=10)
        yield server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        fill_redis(server)
        yield server


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]  # nothing listens once the socket is closed
    return port


def test_mariadb_test_connection_shows_version_databases_and_mariadb_dump(
    api: ApiClient, mariadb: MariaDBServer
) -> None:
    source = mariadb_job_source(mariadb)
    found = ok(api, "POST", "/api/mariadb/test", {"source": source})
    assert found["ok"] is True, found["message"]
    assert "MariaDB" in found["server_version"] and "shop" in found["databases"]
    assert "information_schema" not in found["databases"]
    assert "mariadb-dump" in found["dump_tool"]
    assert found["server_version"] in found["message"]

    wrong = ok(api, "POST", "/api/mariadb/test", {"source": {**source, "password": "n0t-it"}})
    assert wrong["ok"] is False and "Access denied" in wrong["message"]
    assert "n0t-it" not in json.dumps(wrong) and mariadb.password not in json.dumps(wrong)
    gone = ok(api, "POST", "/api/mariadb/test", {"source": {**source, "port": closed_port()}})
    assert gone["ok"] is False and "Can't connect" in gone["message"]
    bad = api.call("POST", "/api/mariadb/test", {"source": {**source, "host": "-oops"}})
    assert bad.status_code == 422 and bad.get_json()["field"] == "source.host"


def test_mariadb_test_connection_of_a_saved_job_uses_its_stored_password(
    api: ApiClient, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    destination = ok(
        api, "POST", "/api/destinations", {"name": "d", "kind": "local", "path": str(tmp_path)}
    )["destination"]
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Shop",
            "source_kind": "mariadb",
            "source": mariadb_job_source(mariadb, "shop"),
            "schedule": "",
            "destination_ids": [destination["id"]],
        },
    )["job"]
    blank = {**mariadb_job_source(mariadb), "password": ""}
    found = ok(api, "POST", "/api/mariadb/test", {"source": blank, "job_id": job["id"]})
    assert found["ok"] is True, found["message"]
    without = ok(api, "POST", "/api/mariadb/test", {"source": blank})
    assert without["ok"] is False and "Access denied" in without["message"]


def test_redis_test_connection_shows_version_keys_and_redis_cli(
    api: ApiClient, redis: RedisServer
) -> None:
    source = redis_job_source(redis)
    found = ok(api, "POST", "/api/redis/test", {"source": source})
    assert found["ok"] is True, found["message"]
    assert found["server_version"].split(".")[0].isdigit()
    assert found["databases"] == ["db0 (5 keys)"]
    assert "redis-cli" in found["dump_tool"]

    wrong = ok(api, "POST", "/api/redis/test", {"source": {**source, "password": "n0t-it"}})
    assert wrong["ok"] is False and "WRONGPASS" in wrong["message"]
    assert "n0t-it" not in json.dumps(wrong) and redis.password not in json.dumps(wrong)
    none = ok(api, "POST", "/api/redis/test", {"source": {**source, "password": ""}})
    assert none["ok"] is False and "NOAUTH" in none["message"]
    gone = ok(api, "POST", "/api/redis/test", {"source": {**source, "port": closed_port()}})
    assert gone["ok"] is False and "Connection refused" in gone["message"]


def test_sqlite_test_connection_opens_each_file_read_only(api: ApiClient, tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    make_sqlite(database, rows=10)
    before = database.read_bytes()
    found = ok(api, "POST", "/api/sqlite/test", {"source": {"paths": [str(database)]}})
    assert found["ok"] is True, found["message"]
    assert found["databases"] == [f"{database}: 2 table(s), journal mode wal"]
    assert found["server_version"].startswith("3.") and "sqlite" not in found["server_version"]
    assert database.read_bytes() == before

    junk = tmp_path / "notes.db"
    junk.write_text("not a database at all, but long enough to have a header" * 10)
    missing = tmp_path / "missing.db"
    bad = ok(
        api,
        "POST",
        "/api/sqlite/test",
        {"source": {"paths": [str(database), str(junk), str(missing)]}},
    )
    assert bad["ok"] is False
    assert f"{junk}: " in bad["message"] and "not a database" in bad["message"]
    assert f"{missing} does not exist" in bad["message"]
    assert not missing.exists()
    relative = api.call("POST", "/api/sqlite/test", {"source": {"paths": ["app.db"]}})
    assert relative.status_code == 422 and relative.get_json()["field"] == "source.paths"
