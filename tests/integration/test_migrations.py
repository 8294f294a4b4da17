"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import Session

from mackuper import db
from mackuper.config import load_settings
from mackuper.models import Base, Job, Run
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
        with Session(engine) as session, session.begin():
            job = Job(name="docs", slug="docs", source_kind="local")
            other = Job(name="mail", slug="mail", source_kind="local")
            session.add_all([job, other])
            session.flush()
            runs = [
                Run(job_id=job.id, job_name="docs", status="running"),
                Run(job_id=job.id, job_name="docs", status="running"),
                Run(job_id=job.id, job_name="docs", status="success"),
                Run(job_id=other.id, job_name="mail", status="running"),
            ]
            session.add_all(runs)
            session.flush()
            ids = [run.id for run in runs]
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
