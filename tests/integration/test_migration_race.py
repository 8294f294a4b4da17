"""Start-up migrations are safe when several processes start at the same moment.

Four processes import Mackuper, wait at a barrier (a file appearing), then all
open the runtime (which migrates) together on an empty database: all succeed,
and the schema is at the migration heads exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.integration

PROCESSES = 4
ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys, time
from pathlib import Path
from mackuper.config import load_settings
from mackuper.runtime import open_runtime
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
runtime = open_runtime(load_settings())
runtime.engine.dispose()
print("migrated")
"""


def race(tmp_path: Path, database_url: str | None, master_key: bool = True) -> str:
    """Run PROCESSES migrating processes from one barrier; return the database URL.

    Without `master_key` they also race to create the key files in the data directory.
    """
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MACKUPER_") and k not in {"SECRET_KEY", "DATABASE_URL"}
        },
        "MACKUPER_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT / "src"),
    }
    if master_key:
        env["MACKUPER_MASTER_KEY"] = Fernet.generate_key().decode()
    url = database_url or f"sqlite:///{data_dir / 'mackuper.db'}"
    env["DATABASE_URL"] = url
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{index}" for index in range(PROCESSES)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(flag), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for flag in ready
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(flag.exists() for flag in ready):
            assert time.monotonic() < deadline, "children never reached the barrier"
            assert all(child.poll() is None for child in children)
            time.sleep(0.05)
        go.touch()
        outputs = [child.communicate(timeout=120)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert [child.returncode for child in children] == [0] * PROCESSES, "\n".join(outputs)
    assert all("migrated" in output for output in outputs)
    return url


def heads() -> set[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(ROOT / "src" / "mackuper" / "migrations"))
    return set(ScriptDirectory.from_config(config).get_heads())


def assert_migrated_once(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert sorted(row[0] for row in versions) == sorted(heads())
            assert connection.execute(text("SELECT count(*) FROM runs")).scalar_one() == 0
    finally:
        engine.dispose()


def test_four_processes_migrating_an_empty_postgresql_database_at_once_all_start(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    assert_migrated_once(race(tmp_path, empty_postgres_url))


def test_four_processes_starting_on_an_empty_sqlite_data_dir_at_once_share_one_key(
    tmp_path: Path,
) -> None:
    """No keys given: the four race to create master.key and secret_key too."""
    assert_migrated_once(race(tmp_path, None, master_key=False))
    data_dir = tmp_path / "data"
    assert len((data_dir / "master.key").read_text().strip()) == 44
    assert len((data_dir / "secret_key").read_text().strip()) == 64
    assert sorted(path.name for path in data_dir.glob(".*.tmp")) == []
