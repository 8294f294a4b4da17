"""PostgreSQL sources against the real server: streamed dumps, restored by pg_restore alone.

The archive is opened with the documented command (`tar -xOf ... --wildcards
'postgresql/<db>.dump.part*' | pg_restore -d <new>`) and every table, large object,
view and function compares equal with the original.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.errors import Cancelled
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.base import SourceError
from mackuper.sources.postgres import PostgresConnection, PostgresSource, member_name
from mackuper.ssh import HostKey, HostKeyMismatch
from tests.integration.engine_support import RecordingHooks
from tests.integration.ssh_support import target_for
from tests.servers.postgres import OwnCluster, PostgresServer, own_cluster, temporary_database
from tests.servers.sshd import SSHServer

pytestmark = pytest.mark.integration

BIG_ROWS = 120_000
"""About 24 MB of dump: more than one 16 MiB part (the 200 MB case is bench/pg_dump.py)."""
ACCOUNTS = 50
TOTAL = ACCOUNTS * 1000


def fill_database(connection: psycopg.Connection, big_rows: int = BIG_ROWS) -> None:
    """Known rows, Unicode, a large object, a view, a function, a bigger table."""
    connection.execute(
        """
        CREATE TABLE people (id int PRIMARY KEY, name text, photo bytea, born date);
        INSERT INTO people VALUES
          (1, 'Zoë Ångström', '\\x00ff10', '1990-02-03'),
          (2, '山田 太郎 🦆', NULL, NULL),
          (3, E'tab\\tnew\\nline ''quote''', '\\x', '2000-01-01');
        CREATE VIEW adults AS SELECT id, name FROM people WHERE born < '1995-01-01';
        CREATE FUNCTION shout(text) RETURNS text LANGUAGE sql IMMUTABLE
          AS $$ SELECT upper($1) || '!' $$;
        CREATE TABLE big (id bigint PRIMARY KEY, payload text);
        INSERT INTO big SELECT n, repeat(md5(n::text), 5) FROM generate_series(1, %s) n;
        CREATE TABLE documents (id int PRIMARY KEY, blob oid);
        INSERT INTO documents
          VALUES (1, lo_from_bytea(0, convert_to(repeat('large object ', 20000), 'UTF8')));
        CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
        INSERT INTO accounts SELECT n, 1000 FROM generate_series(1, %s) n;
        CREATE TABLE events (id bigserial PRIMARY KEY, note text);
        CREATE TABLE event_count (n bigint NOT NULL);
        INSERT INTO event_count VALUES (0);
        """.replace("%s", "{}").format(big_rows, ACCOUNTS)
    )


def fingerprint(connection: psycopg.Connection) -> dict[str, object]:
    """Every table's rows as one hash, the large object, the view and the function."""
    tables = ["people", "big", "documents", "accounts", "events", "event_count"]
    result: dict[str, object] = {}
    for table in tables:
        row = connection.execute(
            sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                " FROM {} t"
            ).format(sql.Identifier(table))
        ).fetchone()
        result[table] = row
    result["large object"] = connection.execute(
        "SELECT md5(lo_get(blob)) FROM documents WHERE id = 1"
    ).fetchone()
    result["view"] = connection.execute("SELECT array_agg(name ORDER BY id) FROM adults").fetchone()
    result["function"] = connection.execute("SELECT shout('héllo')").fetchone()
    return result


def source_for(server: PostgresServer, database: str, **options: object) -> PostgresSource:
    return PostgresSource(
        PostgresConnection(server.host, server.port, server.user),
        databases=[database],
        **options,  # type: ignore[arg-type]
    )


def backup(
    source: PostgresSource,
    destination_dir: Path,
    archive_format: str = "tar.zst",
    hooks: RecordingHooks | None = None,
) -> tuple[object, RecordingHooks]:
    hooks = hooks or RecordingHooks()
    plan = BackupPlan(
        job_id=1,
        job_slug="pg",
        job_name="PostgreSQL",
        run_id=1,
        archive_format=archive_format,
        compression_level=None,
        source=source,
        destinations={1: LocalDestination(str(destination_dir))},
        started_at=datetime.now(UTC),
    )
    return run_backup(plan, hooks), hooks


def stored_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def restore_with_tools(archive: Path, member: str, server: PostgresServer, database: str) -> None:
    """The README's command: tar joins the parts on stdout, pg_restore reads them."""
    command = (
        f"tar -xOf '{archive}' --wildcards '{member}.part*'"
        f" | pg_restore --no-owner -h {server.host} -p {server.port} -U {server.user}"
        f" -d '{database}' --exit-on-error"
    )
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, timeout=300)  # noqa: S603, S607


@dataclass
class Writer:
    """Transfers between accounts and events with their count, committed in a loop."""

    server: PostgresServer
    database: str
    stop: threading.Event
    commits: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.server.connect(self.database) as connection:
                step = 0
                while not self.stop.is_set():
                    step += 1
                    source, target = step % ACCOUNTS + 1, (step * 7) % ACCOUNTS + 1
                    with connection.transaction():
                        connection.execute(
                            "UPDATE accounts SET balance = balance - 3 WHERE id = %s", (source,)
                        )
                        connection.execute(
                            "UPDATE accounts SET balance = balance + 3 WHERE id = %s", (target,)
                        )
                        connection.execute("INSERT INTO events (note) VALUES (%s)", (f"t{step}",))
                        connection.execute("UPDATE event_count SET n = n + 1")
                    self.commits += 1
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


@pytest.fixture
def filled_database(postgres_server: PostgresServer) -> Iterator[str]:
    with temporary_database(postgres_server) as database:
        with postgres_server.connect(database) as connection:
            fill_database(connection)
        yield database


@pytest.fixture
def fresh_database(postgres_server: PostgresServer) -> Iterator[str]:
    with temporary_database(postgres_server) as database:
        yield database


def test_postgres_dump_in_parts_restores_with_pg_restore_alone_while_writes_go_on(
    postgres_server: PostgresServer, filled_database: str, fresh_database: str, tmp_path: Path
) -> None:
    stop = threading.Event()
    writer = Writer(postgres_server, filled_database, stop)
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        while writer.commits < 20 and writer.error is None:
            stop.wait(0.01)
        before = writer.commits
        source = source_for(postgres_server, filled_database)
        result, hooks = backup(source, tmp_path / "backups")
        during = writer.commits - before
    finally:
        stop.set()
        thread.join()
    assert writer.error is None
    assert during > 0, "the writer was blocked for the whole backup"

    member = member_name(filled_database, "dump")
    archive = next(path for path in stored_files(tmp_path / "backups") if path.suffix == ".zst")
    listing = subprocess.run(
        ["tar", "-tf", str(archive)],
        capture_output=True,
        text=True,
        check=True,  # noqa: S607
    ).stdout.split()
    parts = [name for name in listing if name.startswith(member)]
    assert len(parts) >= 2, listing
    assert "postgresql/pg_dumpall.globals.sql.part000001" in listing

    manifest = json.loads(Path(str(archive) + ".manifest.json").read_text())
    (dumped,) = [item for item in manifest["databases"] if item["database"] == filled_database]
    assert dumped["parts"] == len(parts) and dumped["path"] == member
    assert dumped["tool"].startswith("pg_dump (PostgreSQL) ")

    restore_with_tools(archive, member, postgres_server, fresh_database)
    with postgres_server.connect(fresh_database) as restored:
        restored_print = fingerprint(restored)
        # The snapshot invariant: every transfer and every counted event is whole.
        total = restored.execute("SELECT sum(balance) FROM accounts").fetchone()
        counted = restored.execute(
            "SELECT (SELECT n FROM event_count), (SELECT count(*) FROM events)"
        ).fetchone()
    assert total == (TOTAL,)
    assert counted is not None and counted[0] == counted[1] >= before

    # Every other row equals the original's (the writer's tables moved on since).
    with postgres_server.connect(filled_database) as original:
        original_print = fingerprint(original)
    for key in ("people", "big", "documents", "large object", "view", "function"):
        assert restored_print[key] == original_print[key], key
    assert result.problems == []  # type: ignore[attr-defined]
    assert "pg_dump" in hooks.messages("info")


def test_postgres_plain_dump_in_zip_restores_with_unzip_and_psql(
    postgres_server: PostgresServer, filled_database: str, fresh_database: str, tmp_path: Path
) -> None:
    source = source_for(postgres_server, filled_database, dump_format="plain", part_size=4 << 20)
    backup(source, tmp_path / "backups", "zip")
    archive = next(path for path in stored_files(tmp_path / "backups") if path.suffix == ".zip")
    member = member_name(filled_database, "sql")
    server = postgres_server
    command = (
        f"unzip -p '{archive}' '{member}.part*' | psql -X -q -v ON_ERROR_STOP=1"
        f" -h {server.host} -p {server.port} -U {server.user} -d '{fresh_database}'"
    )
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, timeout=300)  # noqa: S603, S607
    assert source.dumped[-1]["parts"] >= 5
    with server.connect(filled_database) as original, server.connect(fresh_database) as restored:
        assert fingerprint(restored) == fingerprint(original)


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[OwnCluster]:
    """A cluster of this module's own (tests stop it) with a role that needs a password."""
    with own_cluster() as cluster:
        server = cluster.server
        with server.connect() as connection:
            connection.execute("CREATE ROLE keeper LOGIN SUPERUSER PASSWORD 'right horse'")
            connection.execute("CREATE DATABASE shop")
            data = connection.execute("SHOW data_directory").fetchone()
            assert data is not None
            hba = Path(data[0]) / "pg_hba.conf"
            hba.write_text(f"host all keeper {server.host}/32 scram-sha-256\n" + hba.read_text())
            connection.execute("SELECT pg_reload_conf()")
        with server.connect("shop") as connection:
            connection.execute(
                "CREATE TABLE big AS SELECT n, repeat(md5(n::text), 5) AS payload"
                " FROM generate_series(1, %s) n",
                (BIG_ROWS,),
            )
        yield cluster


def keeper_source(cluster: OwnCluster, password: str, database: str = "shop") -> PostgresSource:
    server = cluster.server
    return PostgresSource(
        PostgresConnection(server.host, server.port, "keeper", password),
        databases=[database],
        include_globals=False,
        part_size=1 << 20,
    )


def assert_failed_and_nothing_published(
    source: PostgresSource, tmp_path: Path, expected: str, hooks: RecordingHooks | None = None
) -> str:
    with pytest.raises(SourceError) as raised:
        backup(source, tmp_path / "backups", hooks=hooks)
    message = str(raised.value)
    assert expected in message
    assert stored_files(tmp_path / "backups") == []
    return message


def test_postgres_password_reaches_pg_dump_through_the_environment_only(
    password_cluster: OwnCluster, tmp_path: Path
) -> None:
    result, hooks = backup(keeper_source(password_cluster, "right horse"), tmp_path / "backups")
    assert result.problems == []  # type: ignore[attr-defined]
    assert "right horse" not in hooks.messages()
    assert "right horse" not in " ".join(keeper_source(password_cluster, "x").dump_command())


def test_postgres_wrong_password_fails_the_run_and_publishes_nothing(
    password_cluster: OwnCluster, tmp_path: Path
) -> None:
    message = assert_failed_and_nothing_published(
        keeper_source(password_cluster, "wrong horse"), tmp_path, "password authentication failed"
    )
    assert "wrong horse" not in message


def test_postgres_missing_database_fails_the_run_and_publishes_nothing(
    password_cluster: OwnCluster, tmp_path: Path
) -> None:
    assert_failed_and_nothing_published(
        keeper_source(password_cluster, "right horse", "no_such_shop"),
        tmp_path,
        'database "no_such_shop" does not exist',
    )


def _children_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and command == name:
            found.append(int(entry.name))
    return found


def test_postgres_dump_killed_mid_stream_fails_the_run_and_publishes_nothing(
    password_cluster: OwnCluster, tmp_path: Path
) -> None:
    killed: list[int] = []

    def kill_dump(bytes_read: int) -> None:
        if bytes_read and not killed:
            killed.extend(_children_named("pg_dump"))
            for pid in killed:
                os.kill(pid, 9)

    hooks = RecordingHooks(stop_when=kill_dump)
    assert_failed_and_nothing_published(
        keeper_source(password_cluster, "right horse"), tmp_path, "killed by signal 9", hooks
    )
    assert killed


def test_postgres_server_stopped_mid_dump_fails_the_run_and_publishes_nothing(
    password_cluster: OwnCluster, tmp_path: Path
) -> None:
    stopped: list[bool] = []

    def stop_server(bytes_read: int) -> None:
        if bytes_read and not stopped:
            stopped.append(True)
            password_cluster.stop()

    hooks = RecordingHooks(stop_when=stop_server)
    try:
        message = assert_failed_and_nothing_published(
            keeper_source(password_cluster, "right horse"), tmp_path, "pg_dump shop failed", hooks
        )
    finally:
        password_cluster.start()
    assert stopped
    assert "connection" in message or "terminat" in message, message


def test_postgres_member_names_cannot_escape_or_collide() -> None:
    assert member_name("app", "dump") == "postgresql/app.dump"
    assert member_name("../x y.é", "dump") == "postgresql/%2E%2E%2Fx%20y%2E%C3%A9.dump"
    assert "." not in member_name(str(uuid.uuid4()) + ".dump.part", "dump")[11:-5]


def test_postgres_dump_runs_on_the_ssh_host_with_the_password_on_stdin_only(
    password_cluster: OwnCluster, sshd: SSHServer, tmp_path: Path
) -> None:
    """pg_dump runs behind the test sshd (same machine, its loopback); the archive
    restores with pg_restore alone and equals the source table."""
    source = keeper_source(password_cluster, "right horse")
    source.ssh = target_for(sshd, "password")
    source.databases = []  # every database: psql lists them over SSH too
    source.include_globals = True
    result, hooks = backup(source, tmp_path / "backups")
    assert result.problems == []  # type: ignore[attr-defined]
    assert "via SSH" in source.describe()
    assert "right horse" not in hooks.messages()
    assert {item["database"] for item in source.dumped} >= {"shop", "(globals)"}

    archive = next(path for path in stored_files(tmp_path / "backups") if path.suffix == ".zst")
    server = password_cluster.server
    with server.connect() as connection:
        connection.execute("DROP DATABASE IF EXISTS shop_copy")
        connection.execute("CREATE DATABASE shop_copy")
    restore_with_tools(archive, member_name("shop", "dump"), server, "shop_copy")
    query = "SELECT count(*), md5(string_agg(payload, ',' ORDER BY n)) FROM big"
    with server.connect("shop") as original, server.connect("shop_copy") as restored:
        assert restored.execute(query).fetchone() == original.execute(query).fetchone()


def test_postgres_over_ssh_with_a_changed_host_key_sends_nothing(
    password_cluster: OwnCluster, sshd: SSHServer, tmp_path: Path
) -> None:
    source = keeper_source(password_cluster, "right horse")
    other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    source.ssh = target_for(sshd, "password", host_key=HostKey.parse(other_key))
    with pytest.raises(HostKeyMismatch, match="host key .* changed"):
        backup(source, tmp_path / "backups")
    assert stored_files(tmp_path / "backups") == []


def test_postgres_cancelled_backup_ends_its_dump_at_once_and_publishes_nothing(
    password_cluster: OwnCluster, tmp_path: Path
) -> None:
    """The pipeline's own exception still holds the source's frames; close() must not
    wait for the generator to be collected to stop pg_dump."""
    seen: list[int] = []

    def cancel(bytes_read: int) -> None:
        if bytes_read:
            seen.extend(_children_named("pg_dump"))
            raise Cancelled()

    hooks = RecordingHooks(stop_when=cancel)
    with pytest.raises(Cancelled):
        backup(keeper_source(password_cluster, "right horse"), tmp_path / "backups", hooks=hooks)
    assert seen, "pg_dump was not running when the backup was cancelled"
    assert _children_named("pg_dump") == []
    assert stored_files(tmp_path / "backups") == []


def test_postgres_schema_only_and_excluded_tables_reach_pg_dump(
    password_cluster: OwnCluster, tmp_path: Path
) -> None:
    server = password_cluster.server
    with server.connect("shop") as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS scratch_log (line text)")
    source = keeper_source(password_cluster, "right horse")
    source.schema_only = True
    source.exclude_tables = ["scratch_*"]
    backup(source, tmp_path / "backups")
    archive = next(path for path in stored_files(tmp_path / "backups") if path.suffix == ".zst")
    with server.connect() as connection:
        connection.execute("DROP DATABASE IF EXISTS shop_schema")
        connection.execute("CREATE DATABASE shop_schema")
    restore_with_tools(archive, member_name("shop", "dump"), server, "shop_schema")
    with server.connect("shop_schema") as restored:
        assert restored.execute("SELECT count(*) FROM big").fetchone() == (0,)
        tables = restored.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert [row[0] for row in tables] == ["big"]
