"""Issue 19: the anomaly gate's judgement on manifests (core/anomaly.py)."""

from __future__ import annotations

import random

import pytest

from mackuper.core.anomaly import Fingerprint, findings, similarity


def manifest(count: int, seed: int = 0) -> list[dict[str, object]]:
    generator = random.Random(seed)
    return [
        {"path": f"home/docs/{n:05}.odt", "type": "file", "sha256": f"{generator.random():.17f}"}
        for n in range(count)
    ]


def fingerprint(entries: list[dict[str, object]], read: int, written: int) -> Fingerprint:
    return Fingerprint.of(entries, read, written)


@pytest.mark.parametrize("count", [40, 1_000, 20_000])
def test_an_ordinary_day_changing_5_percent_is_not_flagged(count: int) -> None:
    before = manifest(count)
    after = [dict(entry) for entry in before]
    for entry in random.Random(count).sample(after, count // 20):
        entry["sha256"] = "new"
    history = [fingerprint(before, 50 << 20, 20 << 20)]
    assert findings(fingerprint(after, 51 << 20, 21 << 20), history) == []


@pytest.mark.parametrize("count", [40, 1_000, 20_000])
def test_every_file_rewritten_and_incompressible_is_flagged(count: int) -> None:
    before = manifest(count)
    history = [fingerprint(before, 50 << 20, 20 << 20)] * 3
    said = findings(fingerprint(manifest(count, seed=1), 50 << 20, 50 << 20), history)
    assert [line.split(":")[0] for line in said] == ["files changed", "compression ratio jumped"]


def test_renamed_or_deleted_files_and_a_shrunk_source_are_flagged() -> None:
    before = manifest(500)
    renamed = [{**entry, "path": f"{entry['path']}.locked"} for entry in before]
    history = [fingerprint(before, 50 << 20, 20 << 20)]
    said = findings(fingerprint(renamed, 50 << 20, 20 << 20), history)
    assert said == [
        "files gone: about 100% of the 500 files of the previous backup are missing or renamed"
    ]
    said = findings(fingerprint(before[:100], 10 << 20, 4 << 20), history)
    assert [line.split(":")[0] for line in said] == ["files gone", "size dropped"]


def test_the_first_backup_and_a_json_round_trip() -> None:
    first = fingerprint(manifest(100), 1 << 20, 1 << 19)
    assert findings(first, []) == []
    assert Fingerprint.from_json(first.to_json()) == first
    assert Fingerprint.from_json({"files": "x"}) is None
    assert similarity(first.paths, first.paths) == 1.0


def test_an_incremental_point_counts_the_files_earlier_archives_hold() -> None:
    """Issue 17: a quiet day's increment reads a few bytes but the point still holds
    every file; a wiped source is still a size drop."""
    before = [{**entry, "size": 50_000} for entry in manifest(1_000)]
    history = [fingerprint(before, 50 << 20, 20 << 20)] * 3
    point = [{**entry, "archive": "backup_20260101_020000.tar.gz"} for entry in before]
    point[0] = {**before[0], "sha256": "changed today"}
    quiet = fingerprint(point, 50_000, 20_000)
    assert findings(quiet, history) == []
    assert quiet.bytes_held == 999 * 50_000
    assert Fingerprint.from_json(quiet.to_json()) == quiet
    wiped = fingerprint(point[:100], 50_000, 20_000)
    assert [line.split(":")[0] for line in findings(wiped, history)] == [
        "files gone",
        "size dropped",
    ]


def test_a_file_name_that_is_not_utf8_on_disk_is_fingerprinted() -> None:
    """os.fsdecode gives such a name with surrogates: the backup's fingerprint (made
    after the archive is stored) must not fail on it."""
    named = [{"path": "home/caf\udce9.txt", "type": "file", "sha256": "1"}]
    other = [{"path": "home/caf\udce8.txt", "type": "file", "sha256": "1"}]
    assert Fingerprint.of(named, 1, 1).paths != Fingerprint.of(other, 1, 1).paths
