"""Download the dump alone: one database's parts, joined (decrypted, decompressed), as one
file that the database's own tool restores; for every kind, against real servers.

Each test backs up through the API with 256 KiB dump parts (so every dump is several
parts), downloads the dump, restores it with pg_restore, mariadb, sqlite3 or a new
redis-server, and compares every row (or Redis' DEBUG DIGEST) with the original.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mackuper.encryption import generate_identity
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.database_support import (
    SMALL_PART,
    database_backup,
    fill_redis,
    fill_shop,
    make_sqlite,
    mariadb_job_source,
    redis_job_source,
    small_parts,
    sqlite_fingerprint,
)
from tests.integration.restore_support import local_destination, ok
from tests.integration.test_mariadb_redis_sources import fingerprint as shop_fingerprint
from tests.integration.test_postgres_source import fill_database, fingerprint
from tests.servers.mariadb import MariaDBServer, RedisServer, running_mariadb, running_redis
from tests.servers.postgres import PostgresServer, temporary_database

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("small_parts")]
__all__ = ["small_parts"]


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBServer]:
    with running_mariadb() as server:
        fill_shop(server)
        yield server


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        fill_redis(server)
        yield server


@pytest.fixture
def small_database(postgres_server: PostgresServer) -> Iterator[str]:
    with temporary_database(postgres_server) as database:
        with postgres_server.connect(database) as connection:
            fill_database(connection, big_rows=2000)
        yield database


def downloaded(api: ApiClient, backup_id: int, database: str, into: Path) -> Path:
    """GET the dump of `database`; it is saved under the name the answer gives."""
    response = api.client.get(f"/api/backups/{backup_id}/dump", query_string={"database": database})
    assert response.status_code == 200, response.get_data(as_text=True)
    found = re.search(r'filename="([^"]+)"', response.headers["Content-Disposition"])
    assert found is not None
    path = into / found.group(1)
    path.write_bytes(response.get_data())
    assert int(response.headers["Content-Length"]) == path.stat().st_size
    return path


def shell(command: str) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, timeout=300)  # noqa: S603, S607


def test_postgres_dump_downloads_as_one_file_pg_restore_restores(
    api: ApiClient,
    runtime: Runtime,
    postgres_server: PostgresServer,
    small_database: str,
    tmp_path: Path,
) -> None:
    server = postgres_server
    destination = local_destination(api, tmp_path / "backups")
    source = {
        "host": server.host,
        "port": server.port,
        "username": server.user,
        "databases": [small_database],
        "include_globals": False,
    }
    backup = database_backup(api, runtime, "postgresql", source, destination["id"], "tar.zst")
    tree = ok(api, "GET", f"/api/backups/{backup['id']}/tree")
    (dumped,) = tree["dumps"]
    assert dumped["kind"] == "postgresql" and dumped["size"] > 2 * SMALL_PART

    dump = downloaded(api, backup["id"], small_database, tmp_path)
    assert dump.name == f"{small_database}.dump"
    assert dump.read_bytes()[:5] == b"PGDMP"  # one custom-format file, parts joined
    with temporary_database(server) as copy:
        shell(
            f"pg_restore --no-owner --exit-on-error -h {server.host} -p {server.port}"
            f" -U {server.user} -d '{copy}' '{dump}'"
        )
        with server.connect(small_database) as original, server.connect(copy) as restored:
            assert fingerprint(restored) == fingerprint(original)

    missing = api.client.get(
        f"/api/backups/{backup['id']}/dump", query_string={"database": "nothing"}
    )
    assert missing.status_code == 422 and missing.get_json()["field"] == "database"
    assert small_database in missing.get_json()["error"]


def test_encrypted_postgres_dump_downloads_with_the_key_from_the_restore_page_form(
    api: ApiClient,
    runtime: Runtime,
    postgres_server: PostgresServer,
    small_database: str,
    tmp_path: Path,
) -> None:
    server = postgres_server
    identity, recipient = generate_identity()
    destination = local_destination(api, tmp_path / "backups")
    source = {
        "host": server.host,
        "port": server.port,
        "username": server.user,
        "databases": [small_database],
        "include_globals": False,
        "dump_format": "plain",
    }
    backup = database_backup(
        api,
        runtime,
        "postgresql",
        source,
        destination["id"],
        "tar.gz",
        encryption={"mode": "recipients", "recipients": [recipient]},
    )
    without = api.client.get(
        f"/api/backups/{backup['id']}/dump", query_string={"database": small_database}
    )
    assert without.status_code == 422 and without.get_json()["field"] == "decryption"

    # The page posts a form (the browser streams the answer to disk), with the CSRF token.
    form = {"database": small_database, "identity": identity, "csrf_token": api.csrf}
    response = api.client.post(f"/api/backups/{backup['id']}/dump", data=form)
    assert response.status_code == 200, response.get_data(as_text=True)
    dump = tmp_path / "plain.sql"
    dump.write_bytes(response.get_data())
    assert identity.encode() not in dump.read_bytes()
    with temporary_database(server) as copy:
        shell(
            f"psql -X -q -v ON_ERROR_STOP=1 -h {server.host} -p {server.port} -U {server.user}"
            f" -d '{copy}' -f '{dump}'"
        )
        with server.connect(small_database) as original, server.connect(copy) as restored:
            assert fingerprint(restored) == fingerprint(original)


def test_mariadb_dump_downloads_as_one_file_the_mariadb_client_restores(
    api: ApiClient, runtime: Runtime, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    source = mariadb_job_source(mariadb, "shop")
    backup = database_backup(api, runtime, "mariadb", source, destination["id"], "zip")
    dump = downloaded(api, backup["id"], "shop", tmp_path)
    assert dump.name == "shop.sql" and dump.stat().st_size > 2 * SMALL_PART
    mariadb.sql("DROP DATABASE IF EXISTS shop_download; CREATE DATABASE shop_download")
    shell(
        f"mariadb --no-defaults --socket={mariadb.socket} -uroot"
        f" --default-character-set=utf8mb4 shop_download < '{dump}'"
    )
    assert shop_fingerprint(mariadb, "shop_download") == shop_fingerprint(mariadb, "shop")


def test_sqlite_dump_downloads_as_one_file_sqlite3_restores(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    database = tmp_path / "app.db"
    make_sqlite(database)
    destination = local_destination(api, tmp_path / "backups")
    backup = database_backup(
        api, runtime, "sqlite", {"paths": [str(database)]}, destination["id"], "tar.xz"
    )
    dump = downloaded(api, backup["id"], str(database), tmp_path)
    assert dump.name == "app.db.sql" and dump.stat().st_size > 2 * SMALL_PART
    restored = tmp_path / "restored.db"
    shell(f"sqlite3 -bail '{restored}' < '{dump}'")
    assert sqlite_fingerprint(restored) == sqlite_fingerprint(database)


def test_redis_dump_downloads_as_a_dump_rdb_redis_starts_from(
    api: ApiClient, runtime: Runtime, redis: RedisServer, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    backup = database_backup(
        api, runtime, "redis", redis_job_source(redis), destination["id"], "tar"
    )
    dump = downloaded(api, backup["id"], "redis", tmp_path)
    assert dump.name == "dump.rdb" and dump.read_bytes()[:5] == b"REDIS"
    assert dump.stat().st_size > 2 * SMALL_PART
    with running_redis(dump) as restored:
        assert restored.cli("DBSIZE") == redis.cli("DBSIZE")
        assert restored.cli("DEBUG", "DIGEST") == redis.cli("DEBUG", "DIGEST")
