"""A PostgreSQL job end to end through the API: backup, then Mackuper's database restore.

The job is made and run as the pages do; the restore run feeds the dump's parts from
the stored archive to pg_restore, into a database it makes; every row compares equal.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mackuper.encryption import generate_identity
from mackuper.runtime import Runtime
from mackuper.sources.postgres import member_name
from tests.conftest import ApiClient
from tests.integration.restore_support import finished_run, local_destination, ok, run_log
from tests.integration.test_postgres_source import fill_database, fingerprint
from tests.integration.test_restore_cli import _mackuper
from tests.servers.postgres import PostgresServer, own_cluster, temporary_database

pytestmark = pytest.mark.integration


@pytest.fixture
def source_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The full test database (its dump spans several parts)."""
    with temporary_database(postgres_server) as database:
        with postgres_server.connect(database) as connection:
            fill_database(connection)
        yield database


@pytest.fixture
def small_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The same kinds of objects with a small big table: for what is not about size."""
    with temporary_database(postgres_server) as database:
        with postgres_server.connect(database) as connection:
            fill_database(connection, big_rows=2000)
        yield database


def backed_up_database(
    api: ApiClient,
    runtime: Runtime,
    server: PostgresServer,
    database: str,
    destination_id: int,
    archive_format: str,
    **extra: Any,
) -> dict[str, Any]:
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Shop database",
            "source_kind": "postgresql",
            "source": {
                "host": server.host,
                "port": server.port,
                "username": server.user,
                "databases": [database],
                "include_globals": False,
            },
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


@pytest.mark.parametrize("archive_format", ["tar.zst", "zip"])
def test_postgres_backup_restores_through_mackuper_into_a_new_database(
    api: ApiClient,
    runtime: Runtime,
    postgres_server: PostgresServer,
    source_database: str,
    tmp_path: Path,
    archive_format: str,
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    backup = backed_up_database(
        api, runtime, postgres_server, source_database, destination["id"], archive_format
    )
    manifest_path = next((tmp_path / "backups").rglob("*.manifest.json"))
    (dumped,) = json.loads(manifest_path.read_text())["databases"]
    assert dumped["database"] == source_database and dumped["size"] > 16 << 20

    new_name = f"{source_database}_restored"
    body = {
        "artifact_id": backup["id"],
        "database": source_database,
        "target": {"same_as_source": True, "database": new_name},
    }
    try:
        run = finished_run(api, runtime, ok(api, "POST", "/api/restore/database", body)["run"])
        assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
        with (
            postgres_server.connect(source_database) as original,
            postgres_server.connect(new_name) as restored,
        ):
            assert fingerprint(restored) == fingerprint(original)

        # The same again: the database exists now, so the request is refused, unqueued.
        again = api.call("POST", "/api/restore/database", body)
        assert again.status_code == 422, again.get_data(as_text=True)
        assert again.get_json()["field"] == "target.database"
        assert "already exists" in again.get_json()["error"]
        runs = ok(api, "GET", "/api/runs")["runs"]
        assert [item["id"] for item in runs if item["kind"] == "restore"] == [run["id"]]
    finally:
        with postgres_server.connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{new_name}" WITH (FORCE)')


def test_postgres_restore_into_an_existing_database_needs_its_name_confirmed(
    api: ApiClient,
    runtime: Runtime,
    postgres_server: PostgresServer,
    small_database: str,
    tmp_path: Path,
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    backup = backed_up_database(
        api, runtime, postgres_server, small_database, destination["id"], "tar.zst"
    )
    with temporary_database(postgres_server) as existing:
        with postgres_server.connect(existing) as connection:
            connection.execute("CREATE TABLE people (id int PRIMARY KEY, name text)")
            connection.execute("INSERT INTO people VALUES (1, 'to be replaced')")
        body: dict[str, Any] = {
            "artifact_id": backup["id"],
            "database": small_database,
            "target": {"database": existing, "existing": True, "confirm": "yes"},
        }
        refused = api.call("POST", "/api/restore/database", body)
        assert refused.status_code == 422
        assert refused.get_json()["field"] == "target.confirm"
        body["target"]["confirm"] = existing
        missing = api.call(
            "POST", "/api/restore/database", {**body, "database": "not_in_this_backup"}
        )
        assert missing.status_code == 422 and missing.get_json()["field"] == "database"

        run = finished_run(api, runtime, ok(api, "POST", "/api/restore/database", body)["run"])
        assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
        with (
            postgres_server.connect(small_database) as original,
            postgres_server.connect(existing) as restored,
        ):
            assert fingerprint(restored) == fingerprint(original)


def test_postgres_restore_database_from_the_cli(
    api: ApiClient,
    runtime: Runtime,
    data_dir: Path,
    postgres_server: PostgresServer,
    small_database: str,
    tmp_path: Path,
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    backup = backed_up_database(
        api, runtime, postgres_server, small_database, destination["id"], "tar.gz"
    )
    new_name = f"{small_database}_cli"
    command = ["restore-database", str(backup["id"]), "--database", small_database]
    try:
        done = _mackuper(data_dir, *command, "--into", new_name)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "success" in done.stdout
        with (
            postgres_server.connect(small_database) as original,
            postgres_server.connect(new_name) as restored,
        ):
            assert fingerprint(restored) == fingerprint(original)
        again = _mackuper(data_dir, *command, "--into", new_name)
        assert again.returncode == 2 and "already exists" in again.stdout
        assert "run " not in again.stdout  # refused before a run was queued
        unconfirmed = _mackuper(data_dir, *command, "--into", new_name, "--replace-existing", "x")
        assert unconfirmed.returncode == 2
        replaced = _mackuper(data_dir, *command, "--into", new_name, "--replace-existing", new_name)
        assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    finally:
        with postgres_server.connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{new_name}" WITH (FORCE)')


def test_postgres_test_connection_shows_version_databases_and_whether_pg_dump_fits(
    api: ApiClient, postgres_server: PostgresServer, small_database: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens once the socket is closed
    source = {"host": postgres_server.host, "port": postgres_server.port, "username": "postgres"}
    found = ok(api, "POST", "/api/postgresql/test", {"source": source})
    assert found["ok"] is True, found["message"]
    assert small_database in found["databases"]
    server_major = int(found["server_version"].split(".")[0])
    assert found["pg_dump_version"] >= server_major

    refused = ok(api, "POST", "/api/postgresql/test", {"source": {**source, "port": closed_port}})
    assert refused["ok"] is False and "Connection refused" in refused["message"]
    bad = api.call("POST", "/api/postgresql/test", {"source": {**source, "host": "-oProxy"}})
    assert bad.status_code == 422 and bad.get_json()["field"] == "source.host"


def test_postgres_restore_to_another_server_keeps_its_password_out_of_the_run(
    api: ApiClient,
    runtime: Runtime,
    postgres_server: PostgresServer,
    small_database: str,
    tmp_path: Path,
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    backup = backed_up_database(
        api, runtime, postgres_server, small_database, destination["id"], "tar.zst"
    )
    with own_cluster() as cluster:
        other = cluster.server
        with other.connect() as connection:
            connection.execute("CREATE ROLE restorer LOGIN SUPERUSER PASSWORD 'blue pony'")
            data = connection.execute("SHOW data_directory").fetchone()
            assert data is not None
            hba = Path(data[0]) / "pg_hba.conf"
            hba.write_text(f"host all restorer {other.host}/32 scram-sha-256\n" + hba.read_text())
            connection.execute("SELECT pg_reload_conf()")
        target = {
            "same_as_source": False,
            "host": other.host,
            "port": other.port,
            "username": "restorer",
            "password": "blue pony",
            "database": "copy",
        }
        body = {"artifact_id": backup["id"], "database": small_database, "target": target}
        queued = ok(api, "POST", "/api/restore/database", body)["run"]
        assert "blue pony" not in json.dumps(queued)
        run = finished_run(api, runtime, queued)
        assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
        assert "blue pony" not in json.dumps(run) + " ".join(run_log(api, run["id"]))
        audit = json.dumps(ok(api, "GET", "/api/audit"))
        assert "database restore started" in audit and "blue pony" not in audit
        with (
            postgres_server.connect(small_database) as original,
            other.connect("copy") as restored,
        ):
            assert fingerprint(restored) == fingerprint(original)


def test_encrypted_postgres_backup_restores_with_age_and_through_mackuper_with_the_key(
    api: ApiClient,
    runtime: Runtime,
    postgres_server: PostgresServer,
    small_database: str,
    tmp_path: Path,
) -> None:
    identity, recipient = generate_identity()
    destination = local_destination(api, tmp_path / "backups")
    backup = backed_up_database(
        api,
        runtime,
        postgres_server,
        small_database,
        destination["id"],
        "tar.zst",
        encryption={"mode": "recipients", "recipients": [recipient]},
    )
    archive = next((tmp_path / "backups").rglob("*.tar.zst.age"))
    key_file = tmp_path / "key.txt"
    key_file.write_text(identity + "\n")
    member = member_name(small_database, "dump")
    server = postgres_server
    with temporary_database(server) as by_hand:
        command = (
            f"age -d -i '{key_file}' '{archive}' | tar --zstd -xOf - --wildcards '{member}.part*'"
            f" | pg_restore --no-owner -h {server.host} -p {server.port} -U {server.user}"
            f" -d '{by_hand}' --exit-on-error"
        )
        subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, timeout=300)  # noqa: S603, S607
        with server.connect(small_database) as original, server.connect(by_hand) as restored:
            assert fingerprint(restored) == fingerprint(original)

    new_name = f"{small_database}_sealed"
    body: dict[str, Any] = {
        "artifact_id": backup["id"],
        "database": small_database,
        "target": {"database": new_name},
    }
    refused = api.call("POST", "/api/restore/database", body)
    assert refused.status_code == 422 and refused.get_json()["field"] == "decryption"
    try:
        queued = ok(
            api, "POST", "/api/restore/database", {**body, "decryption": {"identity": identity}}
        )
        run = finished_run(api, runtime, queued["run"])
        assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
        assert identity not in json.dumps(run)
        with server.connect(small_database) as original, server.connect(new_name) as restored:
            assert fingerprint(restored) == fingerprint(original)
    finally:
        with server.connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{new_name}" WITH (FORCE)')
