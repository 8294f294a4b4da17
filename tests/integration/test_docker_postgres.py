"""PostgreSQL in a container, dumped by its own pg_dump through the engine's exec and
restored into a fresh container (issue 18, Done-when 4), on podman's Docker-compatible
API.

The server's container publishes no port: Mackuper reaches it only through the engine
(`exec`), and the dump in the archive is the container's pg_dump 15 (the manifest
says so). A fresh container from the same image gets the dump with the standard
tools (`tar -xOf ... | podman exec -i ... pg_restore`), and every row compares equal.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.base import SourceError
from mackuper.sources.postgres import PostgresConnection, PostgresSource, member_name
from tests.integration.docker_support import run_container, unique
from tests.integration.engine_support import RecordingHooks
from tests.servers.podman import PodmanEngine, podman, podman_env

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL, photo bytea);
INSERT INTO people VALUES (1, 'Zoë Ångström', '\\x00ff10'), (2, '山田 太郎 🦆', NULL),
  (3, 'tab	and ''quote''', '\\x');
CREATE TABLE readings AS
  SELECT n AS id, md5(n::text) AS digest, n * 0.5 AS value FROM generate_series(1, 20000) n;
"""
CHECK = "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"


def psql(container: str, database: str, sql: str) -> str:
    result = podman(
        "exec", "-i", container, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
        "-d", database, "-f", "-", input_text=sql,
    )  # fmt: skip
    return result.stdout.strip()


def start_postgres(engine: PodmanEngine, image: str) -> str:
    name = unique("mkp-pg")
    run_container(engine, image, None, name=name, detach=True, labels=engine.labels())
    deadline = time.monotonic() + 120
    while podman("exec", name, "pg_isready", "-q", check=False).returncode != 0:
        assert time.monotonic() < deadline, "PostgreSQL in its container did not start"
        time.sleep(0.3)
    return name


@pytest.fixture
def database_container(podman_engine: PodmanEngine, postgres_image: str) -> Iterator[str]:
    name = start_postgres(podman_engine, postgres_image)
    try:
        podman("exec", name, "createdb", "shop")
        psql(name, "shop", SCHEMA)
        yield name
    finally:
        podman_engine.client.api.remove_container(name, force=True)


def backup(source: PostgresSource, directory: Path) -> RecordingHooks:
    hooks = RecordingHooks()
    plan = BackupPlan(
        job_id=1,
        job_slug="shop",
        job_name="Shop",
        run_id=1,
        archive_format="tar.zst",
        compression_level=None,
        source=source,
        destinations={1: LocalDestination(str(directory))},
        started_at=datetime.now(UTC),
    )
    run_backup(plan, hooks)
    return hooks


def in_container(engine: PodmanEngine, container: str, databases: list[str]) -> PostgresSource:
    return PostgresSource(
        # as seen from inside the container: its own socket
        connection=PostgresConnection("/var/run/postgresql", 5432, "postgres"),
        databases=databases,
        include_globals=False,
        container=container,
        engine_address=engine.url,
    )


def test_postgres_in_a_container_is_dumped_by_exec_and_restores_into_a_fresh_container(
    podman_engine: PodmanEngine,
    postgres_image: str,
    database_container: str,
    tmp_path: Path,
) -> None:
    ports = podman_engine.client.api.inspect_container(database_container)["HostConfig"]
    assert not ports.get("PortBindings")  # nothing published: only the engine reaches it
    source = in_container(podman_engine, database_container, ["shop"])

    backup(source, tmp_path / "backups")

    (dumped,) = source.dumped
    assert dumped["tool"] == f"pg_dump in container {database_container}"
    archive = next((tmp_path / "backups").rglob("*.tar.zst"))
    fresh = start_postgres(podman_engine, postgres_image)
    try:
        podman("exec", fresh, "createdb", "shop")
        restore = (
            f"tar -xOf '{archive}' --wildcards '{member_name('shop', 'dump')}.part*'"
            f" | podman exec -i {fresh} pg_restore --no-owner -d shop"
        )
        subprocess.run(restore, shell=True, check=True, env=podman_env())  # noqa: S602
        for table in ("people", "readings"):
            expected = psql(database_container, "shop", CHECK.format(table=table))
            assert psql(fresh, "shop", CHECK.format(table=table)) == expected
        assert psql(fresh, "shop", "SELECT count(*) FROM readings") == "20000"
    finally:
        podman_engine.client.api.remove_container(fresh, force=True)


def test_a_failing_dump_in_a_container_fails_the_backup_with_pg_dumps_message(
    podman_engine: PodmanEngine, database_container: str, tmp_path: Path
) -> None:
    source = in_container(podman_engine, database_container, ["no_such_database"])
    with pytest.raises(SourceError, match="no_such_database"):
        backup(source, tmp_path / "backups")
    assert not list((tmp_path / "backups").rglob("backup_*"))
