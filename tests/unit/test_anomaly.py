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


def fingerprint(
    entries: list[dict[str, object]], read: int, written: int, point: bool = False
) -> Fingerprint:
    return Fingerprint.of(entries, read, written, point=point)


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


def _rehashed(entry: dict[str, object], value: str | None = None) -> dict[str, object]:
    """The entry as this version writes it once it read the file again: its BLAKE3."""
    kept = {key: item for key, item in entry.items() if key not in ("sha256", "archive")}
    return {**kept, "blake3": value if value is not None else f"b3 of {entry['sha256']}"}


def _older(count: int) -> Fingerprint:
    """A full's fingerprint as stored before BLAKE3 (no older_files, no point)."""
    stored = fingerprint(manifest(count), 50 << 20, 20 << 20).to_json()
    del stored["older_files"], stored["point"]
    found = Fingerprint.from_json(stored)
    assert found is not None and found.older_files == count
    return found


def _kinds(said: list[str]) -> list[str]:
    return [line.split(":")[0] for line in said]


def test_the_first_full_hashed_with_blake3_is_not_every_file_changed() -> None:
    """The previous backup listed SHA-256s; the next full hashes the same bytes with
    BLAKE3. That is not "every file changed"; the backup after it is compared by
    contents again."""
    before = manifest(1_000)
    upgraded = fingerprint([_rehashed(entry) for entry in before], 50 << 20, 20 << 20)
    assert upgraded.older_files == 0
    assert findings(upgraded, [_older(1_000)] * 3) == []

    rewritten = [_rehashed(entry, f"encrypted {entry['path']}") for entry in before]
    said = findings(fingerprint(rewritten, 50 << 20, 20 << 20), [upgraded])
    assert _kinds(said) == ["files changed"]


def test_a_chain_across_the_switch_judges_what_it_read_again() -> None:
    """An incremental point after the switch carries the entries it did not read (their
    SHA-256s) and hashes the 300 files that changed with BLAKE3: an ordinary day. Had it
    read every file again because every file was rewritten, that is "files changed".
    The chain's next full then hashes the 700 carried files again: they are left out of
    the comparison, the 300 are compared, so a quiet full is quiet and a rewritten one
    is not."""
    before = [{**entry, "size": 50_000} for entry in manifest(1_000)]
    carried = [{**entry, "archive": "backup_20261201_020000.tar"} for entry in before]
    today = [_rehashed(entry, f"new {entry['path']}") for entry in before[:300]]
    point = fingerprint(today + carried[300:], 15_000_000, 6_000_000, point=True)
    assert point.older_files == 700
    assert findings(point, [_older(1_000)]) == []

    everything = [_rehashed(entry, f"encrypted {entry['path']}") for entry in before]
    said = findings(fingerprint(everything, 50 << 20, 20 << 20, point=True), [_older(1_000)])
    assert _kinds(said) == ["files changed"]

    full = today + [_rehashed(entry) for entry in before[300:]]
    assert findings(fingerprint(full, 50 << 20, 20 << 20), [point]) == []
    rewritten = [_rehashed(entry, f"encrypted {entry['path']}") for entry in before]
    said = findings(fingerprint(rewritten, 50 << 20, 20 << 20), [point])
    assert _kinds(said) == ["files changed"]


@pytest.mark.parametrize("seed", range(40))
def test_a_quiet_full_after_a_point_that_read_few_files_is_quiet(seed: int) -> None:
    """The point before it read 2% of 10,000 files again (BLAKE3) and carried the rest
    with SHA-256: the next full, hashing every file again, has 200 files to compare,
    within the sketches' noise (a review saw ~25% of such fulls called "half changed").
    It does not judge contents then; before the threshold it did, wrongly."""
    before = [{**entry, "size": 5_000} for entry in manifest(10_000, seed=seed)]
    read_again = [_rehashed(entry, f"new {entry['path']}") for entry in before[:200]]
    carried = [{**entry, "archive": "backup_20261201_020000.tar"} for entry in before[200:]]
    point = fingerprint(read_again + carried, 1_000_000, 400_000, point=True)
    full = read_again + [_rehashed(entry) for entry in before[200:]]
    assert findings(fingerprint(full, 50_000_000, 20_000_000), [point]) == []
