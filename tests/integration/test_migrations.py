"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from mackuper import db
from mackuper.config import load_settings
from mackuper.models import Base
from mackuper.runtime import open_runtime

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mackuper.db'}"
    url: str = request.getfixturevalue("postgres_url")
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
