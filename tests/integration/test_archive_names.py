"""Every run's archive has its own name, and no writer replaces a stored object.

Archive names have one-second resolution; two runs of a job that start in the
same second used to share a name and the second silently replaced the first.
These tests run the real pipeline against a local directory and both S3 servers
(moto, which honours `If-None-Match`, and rclone, which ignores it).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.core.naming import archive_key, manifest_key
from mackuper.destinations.local import LocalDestination
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.engine_support import RecordingHooks, backup, extract
from tests.integration.restore_support import local_destination, ok, restore
from tests.integration.storage_support import PLANTED, Store, store
from tests.trees import file_hashes

pytestmark = pytest.mark.integration

__all__ = ["store"]  # the fixture, parametrized over every destination kind

SECOND = datetime(2026, 11, 30, 15, 57, 43, 250_000, tzinfo=UTC)


def _opened_with_tar(data: bytes, archive_format: str, work: Path) -> dict[str, str]:
    """File name -> SHA-256 of what GNU tar extracts from `data`."""
    work.mkdir(parents=True)
    archive = work / f"archive.{archive_format}"
    archive.write_bytes(data)
    extract(archive, archive_format, work / "out")
    return {Path(name).name: digest for name, digest in file_hashes(work / "out").items()}


def test_runs_in_one_second_get_their_own_names_and_keep_their_own_data(
    store: Store, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    hooks = RecordingHooks()  # one catalog, as the database is for every worker
    names = []
    for number in range(1, 5):
        (source / "state.txt").write_text(f"the source as it was at run {number}\n")
        result, _ = backup(source, {1: store.destination}, "tar.gz", hooks=hooks, started_at=SECOND)
        names.append(result.archive_name)
    assert names == [
        "backup_20261130_155743.tar.gz",
        "backup_20261130_155743-2.tar.gz",
        "backup_20261130_155743-3.tar.gz",
        "backup_20261130_155743-4.tar.gz",
    ]
    for number, name in enumerate(names, start=1):
        key = f"engine-test/2026/11/{name}"
        expected = hashlib.sha256(f"the source as it was at run {number}\n".encode()).hexdigest()
        assert _opened_with_tar(store.read(key), "tar.gz", tmp_path / f"check-{number}") == {
            "state.txt": expected
        }
        assert '"run_id":42' in store.read(manifest_key(key)).decode()
    assert store.leftovers() == []


@pytest.mark.parametrize("planted", ["archive", "manifest"])
def test_an_object_planted_at_the_name_is_left_alone_and_the_run_takes_the_next_name(
    store: Store, tmp_path: Path, planted: str
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "file.txt").write_text("mine\n")
    first = archive_key("", "engine-test", SECOND, "tar.zst")
    store.plant(first if planted == "archive" else manifest_key(first), PLANTED)

    result, hooks = backup(source, {1: store.destination}, "tar.zst", started_at=SECOND)

    assert result.archive_name == "backup_20261130_155743-2.tar.zst"
    assert store.read(first if planted == "archive" else manifest_key(first)) == PLANTED
    second = archive_key("", "engine-test", SECOND, "tar.zst", sequence=2)
    assert _opened_with_tar(store.read(second), "tar.zst", tmp_path / "check") == {
        "file.txt": hashlib.sha256(b"mine\n").hexdigest()
    }
    assert "taking the next name" in hooks.messages("info")
    assert [artifact["key"] for artifact in hooks.artifacts.values()] == [first, second]
    assert [artifact["state"] for artifact in hooks.artifacts.values()] == ["deleted", "stored"]


def test_import_brings_back_both_archives_of_one_second_each_with_its_own_data(
    tmp_path: Path, runtime: Runtime, api: ApiClient
) -> None:
    """After losing the database, the numbered name is an archive like any other."""
    root = tmp_path / "backups"
    source = tmp_path / "source"
    source.mkdir()
    hooks = RecordingHooks()
    for number in (1, 2):
        (source / "state.txt").write_text(f"run {number}\n")
        backup(source, {1: LocalDestination(str(root))}, "tar.gz", hooks=hooks, started_at=SECOND)

    destination = local_destination(api, root)
    report = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]
    assert report["imported"] == 2, report
    backups = sorted(ok(api, "GET", "/api/backups")["backups"], key=lambda item: item["key"])
    assert [item["key"].rsplit("/", 1)[-1] for item in backups] == [
        "backup_20261130_155743-2.tar.gz",
        "backup_20261130_155743.tar.gz",
    ]
    for item, number in zip(backups, (2, 1), strict=True):
        target = tmp_path / f"restored-{number}"
        run = restore(api, runtime, item["id"], {"kind": "local", "path": str(target)})
        assert run["status"] == "success", run["error"]
        (restored,) = target.rglob("state.txt")
        assert restored.read_text() == f"run {number}\n"
