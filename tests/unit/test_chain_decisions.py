"""Incremental chains: the pure decisions of core/chain.py (issue 17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mackuper.core.chain import (
    BackupMode,
    Point,
    decide,
    dumpdir,
    holder,
    own_members,
    sibling_key,
    unchanged,
)

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _point(level: int, full_age_days: float = 1, broken: str | None = None) -> Point:
    return Point(
        run_id=10 + level,
        archive_name=f"backup_20261130_0200{level:02d}.tar.zst",
        level=level,
        full_started_at=NOW - timedelta(days=full_age_days),
        archives=tuple(f"a{index}" for index in range(level + 1)),
        broken=broken,
    )


INCREMENTAL_7 = BackupMode(incremental=True, full_every_runs=7)


@pytest.mark.parametrize(
    ("mode", "base", "full", "said"),
    [
        (BackupMode(), _point(0), True, "full backups"),
        (INCREMENTAL_7, None, True, "no earlier point"),
        (INCREMENTAL_7, _point(0), False, "level 1"),
        (INCREMENTAL_7, _point(5), False, "level 6"),
        (INCREMENTAL_7, _point(6), True, "7 points"),
        (INCREMENTAL_7, _point(2, broken="a1 is not stored at Disk"), True, "chain broken"),
        (BackupMode(incremental=True, full_every_days=7), _point(3, 6.9), False, "level 4"),
        (BackupMode(incremental=True, full_every_days=7), _point(3, 7), True, "days old"),
        (BackupMode(incremental=True), _point(500, 400), False, "level 501"),
    ],
)
def test_next_run_is_full_or_incremental_as_the_mode_and_the_chain_say(
    mode: BackupMode, base: Point | None, full: bool, said: str
) -> None:
    decision = decide(mode, base, NOW)
    assert decision.full is full
    assert said in decision.reason


def test_a_broken_chain_names_why_and_starts_a_full() -> None:
    decision = decide(INCREMENTAL_7, _point(2, broken="a1 is not stored at Disk"), NOW)
    assert decision.reason == "chain broken: a1 is not stored at Disk; this run starts a new full"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (None, BackupMode()),
        ({}, BackupMode()),
        ({"backup_mode": {}}, BackupMode()),
        ({"backup_mode": {"mode": "full", "full_every_runs": 3}}, BackupMode()),
        (
            {"backup_mode": {"mode": "incremental", "full_every_runs": 3}},
            BackupMode(incremental=True, full_every_runs=3),
        ),
        (
            {"backup_mode": {"mode": "incremental", "full_every_days": "x"}},
            BackupMode(incremental=True),
        ),
    ],
)
def test_backup_mode_reads_the_job_options(options: object, expected: BackupMode) -> None:
    assert BackupMode.from_options(options) == expected  # type: ignore[arg-type]


BEFORE = {"type": "file", "size": 5, "mtime_ns": 1, "ino": 7, "ctime_ns": 2}


@pytest.mark.parametrize(
    ("previous", "now", "same"),
    [
        (BEFORE, {"type": "file", "size": 5, "mtime_ns": 1, "ino": 7, "ctime_ns": 2}, True),
        ({**BEFORE, "type": "hardlink"}, {**BEFORE}, True),
        (BEFORE, {**BEFORE, "size": 6}, False),
        (BEFORE, {**BEFORE, "mtime_ns": 3}, False),
        (BEFORE, {**BEFORE, "ino": 8}, False),
        (BEFORE, {**BEFORE, "ctime_ns": 9}, False),
        (BEFORE, {**BEFORE, "type": "directory"}, False),
        (None, BEFORE, False),
        (
            {"type": "symlink", "size": 0, "mtime_ns": 1, "ino": 7, "ctime_ns": 2},
            {"type": "symlink", "size": 11, "mtime_ns": 1, "ino": 7, "ctime_ns": 2},
            True,
        ),
    ],
)
def test_a_path_is_unchanged_only_when_type_size_mtime_inode_and_ctime_agree(
    previous: dict[str, object] | None, now: dict[str, object], same: bool
) -> None:
    assert unchanged(previous, now) is same


def test_dumpdir_is_gnu_tars_sorted_nul_list() -> None:
    # As `tar --format=posix --listed-incremental` wrote it for the same directory.
    assert dumpdir([("link", "Y"), ("b", "D"), ("hl", "Y"), ("f1", "N")]) == (
        b"Db\x00Nf1\x00Yhl\x00Ylink\x00\x00"
    )
    assert dumpdir([]) == b"\x00"


def test_entries_name_the_archive_holding_them() -> None:
    files = [{"path": "a"}, {"path": "b", "archive": "backup_20261130_020000.tar"}]
    assert own_members(files) == [{"path": "a"}]
    assert holder(files[0], "self.tar") == "self.tar"
    assert holder(files[1], "self.tar") == "backup_20261130_020000.tar"


def test_sibling_key_finds_an_earlier_month_of_the_same_job() -> None:
    point = "pre/fix/job/2026/12/backup_20261201_020000.tar.zst.age"
    assert (
        sibling_key(point, "backup_20261128_020000-2.tar.zst.age")
        == "pre/fix/job/2026/11/backup_20261128_020000-2.tar.zst.age"
    )
    with pytest.raises(ValueError, match="not an archive name"):
        sibling_key(point, "../../other/backup_20261128_020000.tar")
