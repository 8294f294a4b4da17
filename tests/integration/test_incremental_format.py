"""Mackuper's incremental archives carry the same directory lists as GNU tar's own
(`tar --format=posix --listed-incremental`) for the same tree at the same two points,
and GNU tar lists them as incremental archives (issue 17)."""

from __future__ import annotations

import os
import subprocess
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.chainstate import state_of
from mackuper.pipeline.incremental import ChainPlan
from mackuper.pipeline.run import BackupPlan, BackupResult, run_backup
from mackuper.sources.local import LocalSource
from tests.integration.engine_support import RecordingHooks

pytestmark = pytest.mark.integration

STARTED = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def dumpdirs(archive: Path) -> dict[str, bytes]:
    """Directory name -> its GNU.dumpdir record, as tarfile reads the pax headers."""
    with tarfile.open(archive) as opened:
        return {
            member.name.rstrip("/"): member.pax_headers["GNU.dumpdir"].encode(
                "utf-8", "surrogateescape"
            )
            for member in opened.getmembers()
            if member.isdir()
        }


def mackuper_point(
    source: Path, storage: Path, chain: ChainPlan, second: int
) -> tuple[BackupResult, Path]:
    plan = BackupPlan(
        job_id=1,
        job_slug="format",
        job_name="Format",
        run_id=second + 1,
        archive_format="tar",
        compression_level=None,
        source=LocalSource([str(source)]),
        destinations={1: LocalDestination(str(storage))},
        started_at=STARTED + timedelta(seconds=second),
        chain=chain,
    )
    result = run_backup(plan, RecordingHooks())
    return result, storage / "format" / "2026" / "12" / result.archive_name


def gnu_point(source: Path, snapshot: Path, archive: Path) -> None:
    subprocess.run(
        [
            "tar",
            "--format=posix",
            f"--listed-incremental={snapshot}",
            "-cf",
            str(archive),
            source.name,
        ],
        cwd=source.parent,
        check=True,
        timeout=60,
    )


def test_directory_lists_match_gnu_tars_own_at_a_full_and_an_incremental(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    (source / "docs" / "deep").mkdir(parents=True)
    (source / "empty").mkdir()
    (source / "docs" / "a.txt").write_text("a\n")
    (source / "docs" / "deep" / "b.txt").write_text("b\n")
    (source / "keep.txt").write_text("kept\n")
    (source / "link").symlink_to("keep.txt")
    os.link(source / "keep.txt", source / "hard.txt")
    storage, gnu = tmp_path / "storage", tmp_path / "gnu"
    gnu.mkdir()

    full, full_archive = mackuper_point(source, storage, ChainPlan(level=0), 0)
    gnu_point(source, gnu / "snapshot", gnu / "full.tar")
    time.sleep(1.1)  # GNU tar judges by whole-second-or-better times against its last dump
    (source / "docs" / "a.txt").write_text("changed\n")
    (source / "docs" / "deep" / "b.txt").unlink()
    (source / "docs" / "c.txt").write_text("new\n")
    (source / "empty").rmdir()
    (source / "empty").write_text("a file now\n")

    plan = ChainPlan(
        level=1,
        earlier=(full.archive_name,),
        previous=state_of(full.entries, full.archive_name),
    )
    _, incremental_archive = mackuper_point(source, storage, plan, 1)
    gnu_point(source, gnu / "snapshot", gnu / "incremental.tar")

    prefix = len(str(source.parent).lstrip("/")) + 1
    ours_full = {name[prefix:]: data for name, data in dumpdirs(full_archive).items()}
    ours_incremental = {name[prefix:]: data for name, data in dumpdirs(incremental_archive).items()}
    assert ours_full == dumpdirs(gnu / "full.tar")
    assert ours_incremental == dumpdirs(gnu / "incremental.tar")
    assert (
        ours_incremental["source"] == b"Ddocs\x00Yempty\x00Nhard.txt\x00Nkeep.txt\x00Nlink\x00\x00"
    )

    listing = subprocess.run(
        ["tar", "-tvv", "--incremental", "-f", str(incremental_archive)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Y c.txt" in listing and "N keep.txt" in listing
