"""MariaDB, Redis and SQLite sources on an SSH host (the test sshd, its loopback and disk):
the dump tool runs there, the password reaches it on standard input only, and the
dump restores with the standard tools to equal rows; a changed host key or a missing
remote file fails the run and publishes nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mackuper.runtime import Runtime
from mackuper.sources.base import SourceError
from mackuper.sources.remote import run_tool, ssh_target
from mackuper.sources.sqlite import SQLiteSource
from mackuper.ssh import SSHError
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
from tests.integration.ssh_support import noisy_login
from tests.integration.test_database_dump_download import downloaded
from tests.integration.test_mariadb_redis_sources import fingerprint as shop_fingerprint
from tests.integration.test_sqlite_source import backup as sqlite_backup
from tests.servers.mariadb import MariaDBServer, running_mariadb, running_redis
from tests.servers.ports import free_port
from tests.servers.postgres import PostgresServer
from tests.servers.sshd import SSHServer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("small_parts")]
__all__ = ["small_parts"]
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBServer]:
    with running_mariadb() as server:
        fill_shop(server)
        yield server


def over_ssh(sshd: SSHServer, role: str, **overrides: Any) -> dict[str, Any]:
    user = sshd.users[role]
    fields: dict[str, Any] = {
        "ssh_host": sshd.host,
        "ssh_port": sshd.port,
        "ssh_username": user.username,
        "ssh_auth": "password" if role == "password" else "key",
        "ssh_host_key": sshd.host_public_key,
    }
    if role == "password":
        fields["ssh_password"] = user.password
    else:
        fields["ssh_private_key"] = user.private_key
    return {**fields, **overrides}


def backup_files(tmp_path: Path) -> list[Path]:
    return [path for path in (tmp_path / "backups").rglob("*") if path.is_file()]


def test_mariadb_dump_runs_on_the_ssh_host_and_restores_with_the_mariadb_client(
    api: ApiClient, runtime: Runtime, mariadb: MariaDBServer, sshd: SSHServer, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    source = {**mariadb_job_source(mariadb, "shop"), **over_ssh(sshd, "password")}
    backup = database_backup(api, runtime, "mariadb", source, destination["id"], "tar.zst")
    (run,) = [item for item in ok(api, "GET", "/api/runs")["runs"] if item["kind"] == "backup"]
    log = " ".join(run_log(api, run["id"]))
    assert mariadb.password not in log and sshd.users["password"].password not in log
    manifest = json.loads(next((tmp_path / "backups").rglob("*.manifest.json")).read_text())
    assert manifest["databases"][0]["tool"].startswith("mariadb-dump on ")

    dump = downloaded(api, backup["id"], "shop", tmp_path)
    mariadb.sql("DROP DATABASE IF EXISTS shop_ssh; CREATE DATABASE shop_ssh")
    subprocess.run(  # noqa: S603
        ["mariadb", "--no-defaults", f"--socket={mariadb.socket}", "-uroot"]  # noqa: S607
        + ["--default-character-set=utf8mb4", "shop_ssh"],
        input=dump.read_bytes(),
        check=True,
        timeout=300,
    )
    assert shop_fingerprint(mariadb, "shop_ssh") == shop_fingerprint(mariadb, "shop")


def test_mariadb_over_ssh_with_a_changed_host_key_fails_and_publishes_nothing(
    api: ApiClient, runtime: Runtime, mariadb: MariaDBServer, sshd: SSHServer, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "backups")
    source = {
        **mariadb_job_source(mariadb, "shop"),
        **over_ssh(sshd, "password", ssh_host_key=OTHER_KEY),
    }
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Shop",
            "source_kind": "mariadb",
            "source": source,
            "schedule": "",
            "destination_ids": [destination["id"]],
        },
    )["job"]
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
    assert run["status"] == "failed"
    assert "host key" in run["error"] and "changed" in run["error"]
    assert backup_files(tmp_path) == []


def test_redis_snapshot_taken_on_the_ssh_host_with_a_key_starts_a_new_server(
    api: ApiClient, runtime: Runtime, sshd: SSHServer, tmp_path: Path
) -> None:
    with running_redis() as redis:
        fill_redis(redis)
        destination = local_destination(api, tmp_path / "backups")
        source = {**redis_job_source(redis), **over_ssh(sshd, "key")}
        backup = database_backup(api, runtime, "redis", source, destination["id"], "tar.gz")
        dump = downloaded(api, backup["id"], "redis", tmp_path)
        with running_redis(dump) as restored:
            assert restored.cli("DEBUG", "DIGEST") == redis.cli("DEBUG", "DIGEST")
            assert restored.cli("DBSIZE") == redis.cli("DBSIZE")


def _backed_up_and_restored(
    api: ApiClient,
    runtime: Runtime,
    source: dict[str, Any],
    destination_id: int,
    local: Path,
    tmp_path: Path,
) -> None:
    """Back up the SQLite database `source` names over SSH, restore its dump with the
    sqlite3 shell alone, and compare the result with `local`, the database put there."""
    backup = database_backup(api, runtime, "sqlite", source, destination_id, "zip")
    dump = downloaded(api, backup["id"], source["paths"][0], tmp_path)
    restored = tmp_path / "restored.db"
    restored.unlink(missing_ok=True)
    subprocess.run(  # noqa: S603
        ["sqlite3", "-bail", str(restored)],  # noqa: S607
        input=dump.read_bytes(),
        check=True,
        timeout=120,
    )
    assert sqlite_fingerprint(restored) == sqlite_fingerprint(local)


def _failed_run(
    api: ApiClient,
    runtime: Runtime,
    kind: str,
    source: dict[str, Any],
    destination_id: int,
    tmp_path: Path,
) -> dict[str, Any]:
    """Make a job of `kind` that must fail and run it: its run, failed, having stored
    nothing under tmp_path/backups."""
    body = {
        "name": f"Failing {kind}",
        "source_kind": kind,
        "source": source,
        "schedule": "",
        "destination_ids": [destination_id],
    }
    job = ok(api, "POST", "/api/jobs", body)["job"]
    before = backup_files(tmp_path)
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
    assert run["status"] == "failed", run
    assert backup_files(tmp_path) == before
    return run


def test_sqlite_file_on_the_ssh_host_is_dumped_there(
    api: ApiClient, runtime: Runtime, sshd: SSHServer, tmp_path: Path
) -> None:
    local = tmp_path / "made.db"
    make_sqlite(local)
    with sqlite3.connect(local) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    username = sshd.users["password"].username
    tree = sshd.make_remote_tree(username, {"app.db": local.read_bytes()})
    remote = tree / "app.db"
    destination = local_destination(api, tmp_path / "backups")
    source = {"paths": [str(remote)], **over_ssh(sshd, "password")}
    _backed_up_and_restored(api, runtime, source, destination["id"], local, tmp_path)

    missing = {"paths": [str(tree / "gone.db")], **over_ssh(sshd, "password")}
    run = _failed_run(api, runtime, "sqlite", missing, destination["id"], tmp_path)
    assert "gone.db does not exist" in run["error"]
    assert not (tree / "gone.db").exists()


def test_sqlite_over_ssh_dumps_past_a_noisy_login_and_still_fails_a_locked_database(
    api: ApiClient, runtime: Runtime, sshd: SSHServer, tmp_path: Path
) -> None:
    """sqlite3 is silent when a dump goes well, so locally anything on its standard error
    fails the dump; over SSH that stream also carries the login shell's noise, which
    must not fail a good dump, while what sqlite3 itself reports still fails a bad one."""
    local = tmp_path / "made.db"
    make_sqlite(local)
    with sqlite3.connect(local) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    username = sshd.users["password"].username
    remote = sshd.make_remote_tree(username, {"app.db": local.read_bytes()}) / "app.db"
    destination = local_destination(api, tmp_path / "backups")
    source = {"paths": [str(remote)], **over_ssh(sshd, "password")}
    with noisy_login(sshd, "password"):
        _backed_up_and_restored(api, runtime, source, destination["id"], local, tmp_path)

        config = {"paths": [str(remote)], **over_ssh(sshd, "password")}
        direct = SQLiteSource.from_config(config, {"ssh_password": config["ssh_password"]})
        direct.busy_ms = 200
        holder = sqlite3.connect(remote, isolation_level=None, check_same_thread=False)
        try:
            holder.execute("PRAGMA locking_mode=EXCLUSIVE")
            holder.execute("BEGIN EXCLUSIVE")
            holder.execute("INSERT INTO people VALUES (4, 'locked', NULL)")
            with pytest.raises(SourceError) as raised:
                sqlite_backup(direct, tmp_path / "locked")
        finally:
            holder.close()
    assert str(raised.value) == (
        f"sqlite3 {remote} did not complete the dump: ERROR: (5) database is locked"
    )
    assert [path for path in (tmp_path / "locked").rglob("*") if path.is_file()] == []


def test_a_login_that_greets_on_standard_output_is_left_out_of_the_dumps(
    api: ApiClient, runtime: Runtime, mariadb: MariaDBServer, sshd: SSHServer, tmp_path: Path
) -> None:
    """A ~/.bashrc that prints to standard output puts its words before the dump's first
    byte (a Redis snapshot that no server would load, an SQL dump whose first line is
    not SQL) and before a query's answer (a database named after the greeting); the
    words are left out, said in the log, and the dump restores."""
    destination = local_destination(api, tmp_path / "backups")
    with noisy_login(sshd, "password", "stdout"):
        source = {**mariadb_job_source(mariadb), **over_ssh(sshd, "password")}
        listed = ok(api, "POST", "/api/mariadb/test", {"source": source})
    assert listed["ok"] is True, listed["message"]
    assert "shop" in listed["databases"]
    assert not any("welcome" in name for name in listed["databases"])
    with noisy_login(sshd, "key", "stdout"), running_redis() as redis:
        fill_redis(redis)
        source = {**redis_job_source(redis), **over_ssh(sshd, "key")}
        probe = ok(api, "POST", "/api/redis/test", {"source": source})
        backup = database_backup(api, runtime, "redis", source, destination["id"], "tar")
        dump = downloaded(api, backup["id"], "redis", tmp_path)
        with running_redis(dump) as restored:
            assert restored.cli("DEBUG", "DIGEST") == redis.cli("DEBUG", "DIGEST")
        log = run_log(api, backup["run_id"])
    assert probe["ok"] is True, probe["message"]
    assert probe["databases"] == ["db0 (5 keys)"]
    greeting = len(b"welcome to the build host\n")
    assert f"redis-cli: left out {greeting} bytes the SSH host's login shell printed on" in (
        "\n".join(log)
    )


def test_a_host_that_runs_its_own_menu_instead_of_the_tool_fails_the_probe_and_the_run(
    api: ApiClient, runtime: Runtime, mariadb: MariaDBServer, sshd: SSHServer, tmp_path: Path
) -> None:
    """A login that prints a menu and exits 0 (a forced command) ran no tool: its words
    are neither a database list nor a dump."""
    destination = local_destination(api, tmp_path / "backups")
    source = {**mariadb_job_source(mariadb), **over_ssh(sshd, "password")}
    with noisy_login(sshd, "password", "forced"):
        listed = ok(api, "POST", "/api/mariadb/test", {"source": source})
        run = _failed_run(api, runtime, "mariadb", source, destination["id"], tmp_path)
    assert listed["ok"] is False
    assert "did not run: the SSH host ran something else" in listed["message"]
    assert run["error"].startswith("mariadb-dump")
    assert "did not run: the SSH host ran something else" in run["error"]


def test_a_noisy_login_is_neither_logged_nor_taken_for_a_dump_tools_failure(
    api: ApiClient, runtime: Runtime, sshd: SSHServer, tmp_path: Path
) -> None:
    """Behind a ~/.bashrc that greets on standard error, a Redis dump over SSH backs up
    without the greeting in its log, and one whose server is down fails, and "Test
    connection" says so, with redis-cli's own reason, not the greeting (which came first
    and was taken for the reason: redis-cli's line does not say "error")."""
    destination = local_destination(api, tmp_path / "backups")
    with noisy_login(sshd, "password"), running_redis() as redis:
        fill_redis(redis)
        source = {**redis_job_source(redis), **over_ssh(sshd, "password")}
        backup = database_backup(api, runtime, "redis", source, destination["id"], "tar")
        dump = downloaded(api, backup["id"], "redis", tmp_path)
        with running_redis(dump) as restored:
            assert restored.cli("DEBUG", "DIGEST") == redis.cli("DEBUG", "DIGEST")
        log = run_log(api, backup["run_id"])
        assert any("bytes in" in line for line in log)
        assert not any("welcome" in line for line in log)

        down = {**source, "port": free_port()}
        probe = ok(api, "POST", "/api/redis/test", {"source": down})
        run = _failed_run(api, runtime, "redis", down, destination["id"], tmp_path)
    refused = f"Could not connect to Redis at {redis.host}:{down['port']}: Connection refused"
    assert probe["ok"] is False
    assert refused in probe["message"] and "welcome" not in probe["message"]
    assert run["error"] == f"redis-cli failed (exit status 1): {refused}"


def test_a_command_whose_ssh_fails_after_a_noisy_login_says_its_own_words(
    sshd: SSHServer,
) -> None:
    """Exit status 255 (what the SSH client says for its own failures) is judged by what
    came after the login, as a dump's standard error is."""
    fields = over_ssh(sshd, "password")
    target = ssh_target(fields, fields)
    assert target is not None
    with noisy_login(sshd, "password"), pytest.raises(SSHError) as raised:
        run_tool(target, ["sh", "-c", "echo 'link went down' >&2; exit 255"], {})
    assert str(raised.value) == f"ssh to {target.host}:{target.port} failed: link went down"


def test_test_connection_runs_on_the_ssh_host_for_mariadb_redis_and_sqlite(
    api: ApiClient, mariadb: MariaDBServer, sshd: SSHServer, tmp_path: Path
) -> None:
    source = {**mariadb_job_source(mariadb), **over_ssh(sshd, "password")}
    found = ok(api, "POST", "/api/mariadb/test", {"source": source})
    assert found["ok"] is True, found["message"]
    assert "shop" in found["databases"] and "mariadb-dump" in found["dump_tool"]
    changed = ok(
        api, "POST", "/api/mariadb/test", {"source": {**source, "ssh_host_key": OTHER_KEY}}
    )
    assert changed["ok"] is False and "host key" in changed["message"]
    assert sshd.users["password"].password not in json.dumps(changed)
    untrusted = api.call("POST", "/api/mariadb/test", {"source": {**source, "ssh_host_key": ""}})
    assert untrusted.status_code == 422
    assert untrusted.get_json()["field"] == "source.ssh_host_key"

    with running_redis() as redis:
        fill_redis(redis)
        found = ok(
            api,
            "POST",
            "/api/redis/test",
            {"source": {**redis_job_source(redis), **over_ssh(sshd, "key")}},
        )
        assert found["ok"] is True, found["message"]
        assert found["databases"] == ["db0 (5 keys)"]

    local = tmp_path / "made.db"
    make_sqlite(local, rows=5)
    with sqlite3.connect(local) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tree = sshd.make_remote_tree(sshd.users["password"].username, {"app.db": local.read_bytes()})
    paths = [str(tree / "app.db"), str(tree / "gone.db")]
    found = ok(
        api, "POST", "/api/sqlite/test", {"source": {"paths": paths, **over_ssh(sshd, "password")}}
    )
    assert found["ok"] is False
    assert found["databases"] == [f"{tree / 'app.db'}: 2 table(s), journal mode wal"]
    assert f"{tree / 'gone.db'} does not exist on " in found["message"]


def test_postgres_test_connection_runs_psql_and_pg_dump_on_the_ssh_host(
    api: ApiClient, postgres_server: PostgresServer, sshd: SSHServer
) -> None:
    server = postgres_server
    source = {
        "host": server.host,
        "port": server.port,
        "username": server.user,
        **over_ssh(sshd, "key"),
    }
    found = ok(api, "POST", "/api/postgresql/test", {"source": source})
    assert found["ok"] is True, found["message"]
    assert "postgres" in found["databases"] and found["pg_dump_version"] >= 13
    changed = ok(
        api, "POST", "/api/postgresql/test", {"source": {**source, "ssh_host_key": OTHER_KEY}}
    )
    assert changed["ok"] is False and "host key" in changed["message"]
