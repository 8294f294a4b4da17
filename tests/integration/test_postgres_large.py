"""A table of over 200 MB backs up through a PostgreSQL job and comes back equal, with
pg_restore alone (the README's command) and through Mackuper's database restore.

The dump spans many 16 MiB parts; the row fingerprint is a hash over every row's hash
in key order, so one changed, lost or doubled row shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mackuper.runtime import Runtime
from mackuper.sources.postgres import member_name
from tests.conftest import ApiClient
from tests.integration.restore_support import finished_run, local_destination, ok, run_log
from tests.integration.test_postgres_restore import backed_up_database
from tests.integration.test_postgres_source import restore_with_tools
from tests.servers.postgres import PostgresServer, temporary_database

pytestmark = pytest.mark.integration

ROWS = 1_250_000
MIN_TABLE = 200 << 20


def rows_hash(connection: psycopg.Connection) -> tuple[object, ...]:
    row = connection.execute(
        "SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY t.id)) FROM big t"
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture
def large_database(postgres_server: PostgresServer) -> Iterator[str]:
    with temporary_database(postgres_server) as database:
        with postgres_server.connect(database) as connection:
            connection.execute("CREATE TABLE big (id bigint PRIMARY KEY, payload text, note text)")
            connection.execute(
                "INSERT INTO big SELECT n, repeat(md5(n::text), 5), 'Zoë 🦆 ' || n"
                " FROM generate_series(1, %s) n",
                (ROWS,),
            )
            size = connection.execute("SELECT pg_table_size('big')").fetchone()
            assert size is not None and size[0] >= MIN_TABLE, size
        yield database


def test_a_200_mb_table_restores_equal_with_pg_restore_alone_and_through_mackuper(
    api: ApiClient,
    runtime: Runtime,
    postgres_server: PostgresServer,
    large_database: str,
    tmp_path: Path,
) -> None:
    server = postgres_server
    with server.connect(large_database) as connection:
        expected = rows_hash(connection)
    destination = local_destination(api, tmp_path / "backups")
    backup = backed_up_database(api, runtime, server, large_database, destination["id"], "tar.zst")
    (archive,) = (tmp_path / "backups").rglob("*.tar.zst")

    with temporary_database(server) as by_hand:
        restore_with_tools(archive, member_name(large_database, "dump"), server, by_hand)
        with server.connect(by_hand) as connection:
            assert rows_hash(connection) == expected

    copy = f"{large_database}_copy"
    body = {
        "artifact_id": backup["id"],
        "database": large_database,
        "target": {"same_as_source": True, "database": copy},
    }
    try:
        run = finished_run(api, runtime, ok(api, "POST", "/api/restore/database", body)["run"])
        assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
        with server.connect(copy) as connection:
            assert rows_hash(connection) == expected
    finally:
        with server.connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
