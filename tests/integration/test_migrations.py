"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from mackuper import db
from mackuper.config import load_settings
from mackuper.models import Artifact, Base, Run, RunLog
from mackuper.runtime import open_runtime

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database no migration has touched yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mackuper.db'}"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


def test_migrations_create_the_schema_of_the_models(tmp_path: Path, database_url: str) -> None:
    settings = load_settings(
        {"MACKUPER_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url}
    )
    runtime = open_runtime(settings)
    try:
        tables = set(inspect(runtime.engine).get_table_names())
        assert {"users", "destinations", "jobs", "runs", "run_logs", "artifacts"} <= tables
        with runtime.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
        # A second start finds nothing to do and keeps the data.
        db.upgrade(settings, runtime.engine)
        assert set(inspect(runtime.engine).get_table_names()) == tables
    finally:
        runtime.engine.dispose()


def test_upgrade_keeps_one_running_run_per_job_and_adds_the_index(
    tmp_path: Path, database_url: str
) -> None:
    """A database from before 0003 with two running runs of one job (the old race)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            config = db._alembic_config(database_url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0002_history_indexes")
            command.upgrade(config, "0002_notify")
            # Plain SQL: the models describe the newest schema, not this old one.
            for job_id, name in ((1, "docs"), (2, "mail")):
                connection.execute(
                    text(
                        "INSERT INTO jobs (id, name, slug, enabled, source_kind, source_config,"
                        " archive_format, retention, encryption, notifications, hooks, options,"
                        " created_at, updated_at) VALUES (:id, :name, :name, true, 'local', '{}',"
                        " 'tar.gz', '{}', '{}', '{}', '{}', '{}', CURRENT_TIMESTAMP,"
                        " CURRENT_TIMESTAMP)"
                    ),
                    {"id": job_id, "name": name},
                )
            ids = [1, 2, 3, 4]
            for run_id, job_id, status in zip(
                ids, (1, 1, 1, 2), ("running", "running", "success", "running"), strict=True
            ):
                connection.execute(
                    text(
                        "INSERT INTO runs (id, job_id, job_name, kind, trigger, status,"
                        " cancel_requested, created_at, bytes_read, bytes_written, files_done,"
                        " details) VALUES (:id, :job_id, 'docs', 'backup', 'manual', :status,"
                        " false, CURRENT_TIMESTAMP, 0, 0, 0, '{}')"
                    ),
                    {"id": run_id, "job_id": job_id, "status": status},
                )
    finally:
        engine.dispose()

    settings = load_settings(
        {"MACKUPER_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url}
    )
    runtime = open_runtime(settings)  # migrates to the heads
    try:
        with runtime.sessions() as session:
            statuses = [session.get(Run, run_id).status for run_id in ids]  # type: ignore[union-attr]
        assert statuses == ["interrupted", "running", "success", "running"]
        indexes = {index["name"] for index in inspect(runtime.engine).get_indexes("runs")}
        assert "uq_runs_one_running_per_job" in indexes
    finally:
        runtime.engine.dispose()


def test_upgrade_repairs_runs_that_shared_an_archive_key_and_adds_the_index(
    tmp_path: Path, database_url: str
) -> None:
    """A catalog from before 0004: three runs in one second stored one key (the last
    one's bytes won), a fourth has its own. Only the last publisher keeps the key."""
    engine = create_engine(database_url)
    key = "docs/2026/11/backup_20261130_155743.tar.gz"
    try:
        with engine.begin() as connection:
            config = db._alembic_config(database_url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0003_one_running_run_per_job")
            connection.execute(
                text(
                    "INSERT INTO destinations (id, name, kind, config, created_at)"
                    " VALUES (1, 'Disk', 'local', '{}', CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO jobs (id, name, slug, enabled, source_kind, source_config,"
                    " archive_format, retention, encryption, notifications, hooks, options,"
                    " created_at, updated_at) VALUES (1, 'docs', 'docs', true, 'local', '{}',"
                    " 'tar.gz', '{}', '{}', '{}', '{}', '{}', CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP)"
                )
            )
            finished = ["2026-11-30 15:57:45", "2026-11-30 15:57:44", "2026-11-30 15:57:46"]
            for run_id, at in enumerate([*finished, "2026-11-30 16:00:00"], start=1):
                connection.execute(
                    text(
                        "INSERT INTO runs (id, job_id, job_name, kind, trigger, status,"
                        " cancel_requested, created_at, finished_at, bytes_read, bytes_written,"
                        " files_done, details) VALUES (:id, 1, 'docs', 'backup', 'manual',"
                        " 'success', false, CURRENT_TIMESTAMP, :at, 0, 0, 0, '{}')"
                    ),
                    {"id": run_id, "at": at},
                )
                connection.execute(
                    text(
                        "INSERT INTO artifacts (id, run_id, job_id, destination_id, key, state,"
                        " encrypted, created_at) VALUES (:id, :id, 1, 1, :key, 'stored', false,"
                        " CURRENT_TIMESTAMP)"
                    ),
                    {"id": run_id, "key": key if run_id < 4 else key.replace("57", "58")},
                )
    finally:
        engine.dispose()

    settings = load_settings(
        {"MACKUPER_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url}
    )
    runtime = open_runtime(settings)  # migrates to the heads
    try:
        with runtime.sessions() as session:
            states = [session.get_one(Artifact, number).state for number in range(1, 5)]
            logs = session.scalars(select(RunLog.run_id).where(RunLog.level == "warning")).all()
            note = session.scalars(select(RunLog.message).where(RunLog.run_id == 1)).one()
        # Run 3 finished last: its bytes are the object's. Runs 1 and 2 lost theirs.
        assert states == ["replaced", "replaced", "stored", "stored"]
        assert sorted(logs) == [1, 2]
        assert "holds the archive of run 3" in note
        indexes = {index["name"] for index in inspect(runtime.engine).get_indexes("artifacts")}
        assert "uq_artifacts_live_key" in indexes
        with runtime.sessions() as session, pytest.raises(IntegrityError):
            session.add(Artifact(run_id=1, job_id=1, destination_id=1, key=key, state="pending"))
            session.flush()
    finally:
        runtime.engine.dispose()
