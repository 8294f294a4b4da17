"""Mackuper's own restore of MariaDB and SQLite dumps (API and CLI), and the refusals.

A backup made through the API is restored by a restore run into a new database (or
file) and, with its name typed again, into an existing one whose objects it replaces;
every row compares equal with the original. A new target that exists, an existing one
without the confirmation, and a Redis snapshot are refused when asked, before a run
is queued.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.database_support import (
    database_backup,
    fill_redis,
    fill_shop,
    make_sqlite,
    mariadb_job_source,
    redis_job_source,
    small_parts,
    sqlite_fingerprint,
)
from tests.integration.restore_support import finished_run, local_destination, ok, run_log
from tests.integration.test_mariadb_redis_sources import fingerprint as shop_fingerprint
from tests.integration.test_restore_cli import _mackuper
from tests.servers.mariadb import MariaDBServer, running_mariadb, running_redis

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("small_parts")]
__all__ = ["small_parts"]


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBServer]:
    with running_mariadb() as server:
        fill_shop(server)
        yield server


def restore_runs(api: ApiClient) -> list[int]:
    return [run["id"] for run in ok(api, "GET", "/api/runs")["runs"] if run["kind"] == "restore"]


def refused(api: ApiClient, body: dict[str, Any], field: str, words: str) -> None:
    """The request is a 422 naming `field` and saying `words`, and queues nothing."""
    before = restore_runs(api)
    answer = api.call("POST", "/api/restore/database", body)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["field"] == field, answer.get_json()
    assert words in answer.get_json()["error"], answer.get_json()
    assert restore_runs(api) == before


def test_mariadb_restores_into_a_new_database_then_replaces_an_existing_one_confirmed(
    api: ApiClient, runtime: Runtime, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    source = mariadb_job_source(mariadb, "shop")
    backup = database_backup(api, runtime, "mariadb", source, destination["id"], "tar.zst")
    mariadb.sql("DROP DATABASE IF EXISTS shop_new; DROP DATABASE IF EXISTS shop_old")
    body: dict[str, Any] = {
        "artifact_id": backup["id"],
        "database": "shop",
        "target": {"database": "shop_new"},
    }
    run = finished_run(api, runtime, ok(api, "POST", "/api/restore/database", body)["run"])
    assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
    assert shop_fingerprint(mariadb, "shop_new") == shop_fingerprint(mariadb, "shop")
    assert mariadb.password not in json.dumps(run) + " ".join(run_log(api, run["id"]))

    refused(api, body, "target.database", "already exists")  # a new one that exists now
    missing = {**body, "target": {"database": "shop_old", "existing": True, "confirm": "shop_old"}}
    refused(api, missing, "target.database", "does not exist")

    # An existing database with other rows in the dump's tables and a table of its own.
    mariadb.sql(
        "CREATE DATABASE shop_old; USE shop_old;"
        " CREATE TABLE people (id INT PRIMARY KEY, name TEXT); INSERT INTO people VALUES (9, 'x');"
        " CREATE TABLE own (id INT); INSERT INTO own VALUES (1);"
    )
    existing = {**body, "target": {"database": "shop_old", "existing": True, "confirm": "shop"}}
    refused(api, existing, "target.confirm", "Type shop_old")
    existing["target"]["confirm"] = "shop_old"
    run = finished_run(api, runtime, ok(api, "POST", "/api/restore/database", existing)["run"])
    assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
    assert shop_fingerprint(mariadb, "shop_old") == shop_fingerprint(mariadb, "shop")
    assert mariadb.sql("SELECT id FROM own", "shop_old").split() == ["1"]  # not the dump's


def test_mariadb_restore_to_another_login_keeps_its_password_out(
    api: ApiClient, runtime: Runtime, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    source = mariadb_job_source(mariadb, "shop")
    backup = database_backup(api, runtime, "mariadb", source, destination["id"], "zip")
    mariadb.sql(
        "DROP USER IF EXISTS 'restorer'@'%'; CREATE USER 'restorer'@'%' IDENTIFIED BY 'blue pony';"
        " GRANT ALL ON *.* TO 'restorer'@'%'; DROP DATABASE IF EXISTS shop_other;"
    )
    target = {
        "same_as_source": False,
        "host": mariadb.host,
        "port": mariadb.port,
        "username": "restorer",
        "password": "blue pony",
        "database": "shop_other",
    }
    body = {"artifact_id": backup["id"], "database": "shop", "target": target}
    wrong = {**body, "target": {**target, "password": "not it"}}
    answer = api.call("POST", "/api/restore/database", wrong)
    assert answer.status_code == 409 and "Access denied" in answer.get_json()["error"]
    assert "not it" not in answer.get_data(as_text=True)
    queued = ok(api, "POST", "/api/restore/database", body)["run"]
    run = finished_run(api, runtime, queued)
    assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
    assert "blue pony" not in json.dumps(run) + " ".join(run_log(api, run["id"]))
    assert shop_fingerprint(mariadb, "shop_other") == shop_fingerprint(mariadb, "shop")


def test_sqlite_restores_into_a_new_file_and_over_an_existing_one_confirmed(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    database = tmp_path / "app.db"
    make_sqlite(database)
    destination = local_destination(api, tmp_path / "backups")
    backup = database_backup(
        api, runtime, "sqlite", {"paths": [str(database)]}, destination["id"], "tar.gz"
    )
    new = tmp_path / "restored" / "new.db"
    new.parent.mkdir()
    body: dict[str, Any] = {
        "artifact_id": backup["id"],
        "database": str(database),
        "target": {"database": str(new)},
    }
    refused(api, {**body, "target": {"database": "new.db"}}, "target.database", "absolute")
    run = finished_run(api, runtime, ok(api, "POST", "/api/restore/database", body)["run"])
    assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
    assert sqlite_fingerprint(new) == sqlite_fingerprint(database)
    assert sorted(path.name for path in new.parent.iterdir()) == ["new.db"]  # nothing left
    refused(api, body, "target.database", "already exists")

    # An existing database, open in another connection, is replaced as a whole.
    other = tmp_path / "restored" / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE own (id INTEGER)")
        connection.execute("INSERT INTO own VALUES (1)")
    existing = {**body, "target": {"database": str(other), "existing": True, "confirm": "x"}}
    refused(api, existing, "target.confirm", "Type")
    existing["target"]["confirm"] = str(other)
    run = finished_run(api, runtime, ok(api, "POST", "/api/restore/database", existing)["run"])
    assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
    assert sqlite_fingerprint(other) == sqlite_fingerprint(database)
    assert sorted(path.name for path in other.parent.iterdir()) == ["new.db", "other.db"]


def test_sqlite_and_mariadb_restore_from_the_cli_refuse_an_existing_target_unconfirmed(
    api: ApiClient,
    runtime: Runtime,
    data_dir: Path,
    mariadb: MariaDBServer,
    tmp_path: Path,
) -> None:
    database = tmp_path / "app.db"
    make_sqlite(database)
    destination = local_destination(api, tmp_path / "backups")
    lite = database_backup(
        api, runtime, "sqlite", {"paths": [str(database)]}, destination["id"], "tar.zst"
    )
    copy = tmp_path / "copy.db"
    command = ["restore-database", str(lite["id"]), "--database", str(database)]
    done = _mackuper(data_dir, *command, "--into", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert sqlite_fingerprint(copy) == sqlite_fingerprint(database)
    again = _mackuper(data_dir, *command, "--into", str(copy))
    assert again.returncode == 2 and "already exists" in again.stdout
    assert "run " not in again.stdout

    shop = database_backup(
        api, runtime, "mariadb", mariadb_job_source(mariadb, "shop"), destination["id"]
    )
    mariadb.sql("DROP DATABASE IF EXISTS shop_cli")
    command = ["restore-database", str(shop["id"]), "--database", "shop", "--into", "shop_cli"]
    done = _mackuper(data_dir, *command)
    assert done.returncode == 0, done.stdout + done.stderr
    assert shop_fingerprint(mariadb, "shop_cli") == shop_fingerprint(mariadb, "shop")
    assert _mackuper(data_dir, *command).returncode == 2
    replaced = _mackuper(data_dir, *command, "--replace-existing", "shop_cli")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr


def test_redis_snapshot_is_not_restored_into_a_live_server_but_downloaded(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    with running_redis() as redis:
        fill_redis(redis)
        destination = local_destination(api, tmp_path / "backups")
        backup = database_backup(
            api, runtime, "redis", redis_job_source(redis), destination["id"], "tar"
        )
    body = {"artifact_id": backup["id"], "database": "redis", "target": {"database": "0"}}
    refused(api, body, "database", "download the dump")


def test_whole_server_mariadb_dump_is_refused_with_the_way_to_restore_it(
    api: ApiClient, runtime: Runtime, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    backup = database_backup(
        api, runtime, "mariadb", mariadb_job_source(mariadb), destination["id"], "tar.zst"
    )
    body = {"artifact_id": backup["id"], "database": "(all)", "target": {"database": "x"}}
    refused(api, body, "database", "whole-server")
