"""Honest outcomes: unreadable files warn, cancel publishes nothing, a full disk fails."""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.base import Destination
from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.errors import Cancelled
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.runs.outcome import from_exception, from_result
from mackuper.sources.base import Entry, Reporter
from mackuper.sources.local import LocalSource
from tests.integration.engine_support import RecordingHooks, backup, extract
from tests.servers.s3 import S3Bucket
from tests.trees import b3sum_files, file_hashes, make_small_tree

pytestmark = pytest.mark.integration

_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@contextlib.contextmanager
def file_permissions_enforced() -> Iterator[None]:
    """Root reads everything; drop this thread's DAC override so mode 000 really denies."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(0x20080522, 0)
    saved = (_CapData * 2)()
    assert libc.capget(ctypes.byref(header), saved) == 0
    lowered = (_CapData * 2)()
    ctypes.memmove(lowered, saved, ctypes.sizeof(saved))
    lowered[0].effective &= ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    assert libc.capset(ctypes.byref(header), lowered) == 0
    try:
        yield
    finally:
        assert libc.capset(ctypes.byref(header), saved) == 0


class ChangingSource(LocalSource):
    """Does `change` to one file between listing it (its size is taken) and the archive
    writer opening it."""

    def __init__(self, paths: list[str], victim: Path, change: Callable[[Path], object]) -> None:
        super().__init__(paths)
        self.victim = victim
        self.change = change

    def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
        for entry in super().iter_entries(reporter):
            if "/" + entry.name == str(self.victim):
                self.change(self.victim)
            yield entry


def test_vanished_and_unreadable_files_end_warning_and_are_listed(tmp_path: Path) -> None:
    source = make_small_tree(tmp_path / "source")
    victim = source / "docs" / "readme.txt"
    locked = source / "locked.txt"
    locked.write_text("nobody may read this\n")
    locked.chmod(0o000)
    destination = LocalDestination(str(tmp_path / "backups"))
    plan = BackupPlan(
        job_id=1,
        job_slug="warn",
        job_name="Warn",
        run_id=5,
        archive_format="tar.gz",
        compression_level=None,
        source=ChangingSource([str(source)], victim, Path.unlink),
        destinations={1: destination},
        started_at=datetime.now(UTC),
    )
    hooks = RecordingHooks()
    with file_permissions_enforced():
        result = run_backup(plan, hooks)

    outcome = from_result(result)
    assert outcome.status.value == "warning"
    assert outcome.error == "2 file(s) could not be backed up; see the log"
    warnings = hooks.messages("warning")
    assert f"{victim} vanished before it was read" in warnings
    assert f"cannot read {locked}: Permission denied" in warnings
    (artifact,) = hooks.artifacts.values()
    assert artifact["state"] == "stored"
    extract(tmp_path / "backups" / artifact["key"], "tar.gz", tmp_path / "out")
    restored = tmp_path / "out" / str(source).lstrip("/")
    locked.chmod(0o600)
    expected = file_hashes(source)
    expected.pop("locked.txt")
    assert file_hashes(restored) == expected


def test_cancel_stops_the_backup_and_publishes_nothing(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    server, bucket = s3_bucket
    source = tmp_path / "source"
    source.mkdir()
    for index in range(4):
        (source / f"chunk-{index}.bin").write_bytes(os.urandom(6 * 1024 * 1024))

    def cancel_after_some_bytes(bytes_read: int) -> None:
        if bytes_read > 13 * 1024 * 1024:
            raise Cancelled("cancelled by a user")

    from tests.integration.storage_support import s3_destination

    destinations: dict[int, Destination] = {
        1: s3_destination(server, bucket),
        2: LocalDestination(str(tmp_path / "local")),
    }
    hooks = RecordingHooks(stop_when=cancel_after_some_bytes)
    with pytest.raises(Cancelled) as raised:
        backup(source, destinations, "tar", hooks)

    assert from_exception(raised.value).status.value == "cancelled"
    assert {artifact["state"] for artifact in hooks.artifacts.values()} == {"deleted"}
    assert any("upload_id" in artifact for artifact in hooks.artifacts.values())
    client = server.client()
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert [path for path in (tmp_path / "local").rglob("*") if path.is_file()] == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        print(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"mounting a small tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_full_local_destination_fails_cleanly_without_a_partial_file(
    tmp_path: Path, tiny_disk: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "too-big.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    with pytest.raises(Exception) as raised:
        backup(source, {1: LocalDestination(str(tiny_disk / "backups"))}, "tar.zst")

    outcome = from_exception(raised.value)
    assert outcome.status.value == "failed"
    assert outcome.error is not None
    assert "the destination disk is full (no space left on device)" in outcome.error
    assert "\n" not in outcome.error and "Traceback" not in outcome.error
    assert [path for path in tiny_disk.rglob("*") if path.is_file()] == []


@pytest.mark.parametrize("archive_format", ["tar", "tar.bz2", "zip"])
@pytest.mark.parametrize("change", ["grew", "shrank"])
def test_a_file_that_changes_size_while_read_keeps_a_manifest_hash_of_what_is_stored(
    tmp_path: Path, archive_format: str, change: str
) -> None:
    # The file's SHA-256 is computed on a stage thread for plain tar and in the reading
    # thread beside an inline compressor (bz2); ZIP hashes in its own writer. Either
    # way the manifest must describe the bytes the archive holds: the announced size,
    # zeros where a file shrank, and not the byte read past the end of one that grew.
    source = make_small_tree(tmp_path / "source")
    victim = source / "big.bin"
    # Under 1 MiB, the first read asks for one byte more than the size: the one that grew.
    size = 100_000 if change == "grew" else 3 << 20
    victim.write_bytes(os.urandom(size))

    def grow(path: Path) -> None:
        with path.open("ab") as handle:
            handle.write(os.urandom(5000))

    def shrink(path: Path) -> None:
        os.truncate(path, (1 << 20) + 7)

    plan = BackupPlan(
        job_id=1,
        job_slug="changing",
        job_name="Changing",
        run_id=6,
        archive_format=archive_format,
        compression_level=None,
        source=ChangingSource([str(source)], victim, grow if change == "grew" else shrink),
        destinations={1: LocalDestination(str(tmp_path / "backups"))},
        started_at=datetime.now(UTC),
    )
    hooks = RecordingHooks()
    result = run_backup(plan, hooks)

    assert f"{victim} {change} while it was read" in hooks.messages("warning")
    (artifact,) = hooks.artifacts.values()
    extract(tmp_path / "backups" / artifact["key"], archive_format, tmp_path / "out")
    restored = tmp_path / "out" / str(source).lstrip("/")
    stored = b3sum_files(restored)
    assert len(stored["big.bin"]) == 64
    assert (restored / "big.bin").stat().st_size == size
    if change == "shrank":
        assert (restored / "big.bin").read_bytes()[(1 << 20) + 7 :] == bytes(size - (1 << 20) - 7)
    manifest = {item["path"]: item for item in result.entries}
    for relative, digest in stored.items():
        assert manifest[f"{str(source).lstrip('/')}/{relative}"]["blake3"] == digest, relative
