"""The database and the logs are for the owner only (hardening item 7)."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mackuper.config import load_settings
from mackuper.logs import SharedRotatingFileHandler
from mackuper.models import Setting
from mackuper.runtime import open_runtime


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_and_its_wal_files_are_0600(tmp_path: Path) -> None:
    runtime = open_runtime(load_settings({"MACKUPER_DATA_DIR": str(tmp_path / "data")}))
    try:
        with runtime.sessions.begin() as session:
            session.add(Setting(key="probe", value="1"))
        database = tmp_path / "data" / "mackuper.db"
        files = [
            database,
            database.with_name("mackuper.db-wal"),
            database.with_name("mackuper.db-shm"),
        ]
        assert [path.exists() for path in files] == [True, True, True]
        assert [_mode(path) for path in files] == [0o600, 0o600, 0o600]
    finally:
        runtime.engine.dispose()


def test_an_existing_0644_database_becomes_0600_at_start(tmp_path: Path) -> None:
    settings = load_settings({"MACKUPER_DATA_DIR": str(tmp_path / "data")})
    open_runtime(settings).engine.dispose()
    database = tmp_path / "data" / "mackuper.db"
    database.chmod(0o644)
    open_runtime(settings).engine.dispose()
    assert _mode(database) == 0o600


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[SharedRotatingFileHandler]:
    log = tmp_path / "mackuper.log"
    log.write_text("from an older version\n")
    log.chmod(0o644)
    made = SharedRotatingFileHandler(log, maxBytes=200, backupCount=2, encoding="utf-8")
    yield made
    made.close()


def test_log_files_and_their_rotations_are_0600(
    tmp_path: Path, handler: SharedRotatingFileHandler
) -> None:
    logger = logging.getLogger("mackuper.test.private")
    logger.addHandler(handler)
    try:
        for number in range(20):
            logger.warning("line %d of a log that names hosts and paths", number)
    finally:
        logger.removeHandler(handler)
    files = sorted(tmp_path.glob("mackuper.log*"))
    assert {path.name for path in files} >= {"mackuper.log", "mackuper.log.1", "mackuper.log.lock"}
    assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}
