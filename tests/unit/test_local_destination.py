"""The local destination writes archives through a small window of page cache."""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mackuper.destinations import local
from mackuper.destinations.local import WRITEBACK_STEP, LocalDestination

MIB = 1 << 20
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def resident_bytes(path: Path) -> int:
    """How much of `path` is in the page cache (mincore(2) over a read-only mapping)."""
    size = path.stat().st_size
    page = mmap.PAGESIZE
    descriptor = os.open(path, os.O_RDONLY)
    try:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, descriptor, 0)
        assert address not in (None, ctypes.c_void_p(-1).value)
        try:
            pages = (size + page - 1) // page
            vector = (ctypes.c_ubyte * pages)()
            assert _libc.mincore(address, size, vector) == 0
            return sum(flag & 1 for flag in vector) * page
        finally:
            _libc.munmap(address, size)
    finally:
        os.close(descriptor)


@pytest.fixture
def disk_dir() -> Iterator[Path]:
    """A directory on a disk file system (/tmp may be tmpfs, which keeps everything)."""
    base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path.cwd()  # noqa: S108
    directory = base / f"mkp-local-test-{os.getpid()}"
    directory.mkdir(exist_ok=True)
    yield directory
    shutil.rmtree(directory)


def test_an_archive_is_complete_and_leaves_the_page_cache_after_commit(disk_dir: Path) -> None:
    assert local._start_writeback is not None, "sync_file_range is missing from libc"
    block = os.urandom(MIB)
    total = 3 * WRITEBACK_STEP + 5 * MIB + 123
    writer = LocalDestination(str(disk_dir)).open_writer("job/2026/11/a.tar", {})
    digest = hashlib.sha256()
    written = 0
    while written < total:
        piece = block[: min(MIB, total - written)]
        writer.write(piece)
        digest.update(piece)
        written += len(piece)
    stored = writer.commit()

    archive = disk_dir / "job" / "2026" / "11" / "a.tar"
    assert stored.size == total == archive.stat().st_size
    assert resident_bytes(archive) < 4 * MIB  # dropped window by window, the rest at commit
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == digest.hexdigest()

    control = disk_dir / "control.bin"  # the same amount written plainly stays cached
    with control.open("wb") as handle:
        for _ in range(total // MIB):
            handle.write(block)
    assert resident_bytes(control) > total // 2


def test_a_small_file_is_written_plainly_and_kept_in_cache(disk_dir: Path) -> None:
    destination = LocalDestination(str(disk_dir))
    destination.put_bytes("job/manifest.json", b'{"files": []}', "application/json")

    path = disk_dir / "job" / "manifest.json"
    assert path.read_bytes() == b'{"files": []}'
    assert resident_bytes(path) > 0
