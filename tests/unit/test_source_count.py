"""The quick count of a local source that gives a first run its percentage."""

from __future__ import annotations

import threading
from pathlib import Path

from mackuper.runs.source_count import count_local
from mackuper.sources.local import LocalSource


def test_count_sums_the_regular_files_the_backup_reads_and_skips_excluded_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_bytes(b"x" * 1000)
    (tmp_path / "docs" / "b.tmp").write_bytes(b"y" * 5000)
    (tmp_path / "c.bin").write_bytes(b"z" * 24)
    (tmp_path / "link").symlink_to("c.bin")
    source = LocalSource([str(tmp_path)], excludes=["*.tmp"])
    assert count_local(source, threading.Event()) == (1024, 2)


def test_count_gives_up_when_stopped_or_when_the_path_is_missing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1")
    stopped = threading.Event()
    stopped.set()
    assert count_local(LocalSource([str(tmp_path)]), stopped) is None
    assert count_local(LocalSource([str(tmp_path / "gone")]), threading.Event()) is None
