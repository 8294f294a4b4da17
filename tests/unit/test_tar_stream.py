"""The SSH source's tar reader against what GNU tar and Python's tarfile write.

Every archive is made by a real tar (GNU tar in its posix, gnu and ustar formats,
with the options the SSH source sends) and read back through a pipe, the way the
SSH source reads `ssh`'s stdout; the members must agree with tarfile's reading of
the same bytes, contents included.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mackuper.sources.tar_stream import (
    HARDLINK,
    SYMLINK,
    Member,
    StartNotFound,
    TarStreamError,
    TarStreamReader,
)
from tests.integration.engine_support import make_every_kind_tree

Row = tuple[str, bytes, int, int, int, str, str | None]


def _pipe_of(data: bytes) -> int:
    """A pipe's read end that delivers `data` in uneven writes, then end of file."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        offset, step = 0, 1
        with os.fdopen(write_end, "wb", buffering=0) as pipe, contextlib.suppress(BrokenPipeError):
            while offset < len(data):  # the reader may stop early (padding, errors)
                pipe.write(data[offset : offset + step])
                offset += step
                step = step * 7 % 300_000 + 1  # 1, 8, 57, ...: headers split anywhere

    threading.Thread(target=feed, daemon=True).start()
    return read_end


def _read_all(
    data: bytes, read_size: int = 1 << 20, after: bytes = b""
) -> Iterator[tuple[Member, str | None]]:
    """(member, SHA-256 of its bytes for files) for every member of `data`."""
    fd = _pipe_of(data)
    try:
        reader = TarStreamReader(fd, after=after)
        buffer = memoryview(bytearray(read_size))
        while (member := reader.next()) is not None:
            digest = None
            if member.is_file:
                hasher = hashlib.sha256()
                while count := reader.readinto(buffer):
                    hasher.update(buffer[:count])
                digest = hasher.hexdigest()
            yield member, digest
    finally:
        os.close(fd)


def _expected(data: bytes) -> list[Row]:
    """What tarfile reads from the same bytes: name, type, size, mode, mtime, link, hash."""
    rows = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            digest = None
            if info.isreg():
                handle = archive.extractfile(info)
                assert handle is not None
                digest = hashlib.sha256(handle.read()).hexdigest()
            mtime = float(info.pax_headers.get("mtime", info.mtime))
            rows.append(
                (
                    info.name,
                    info.type,
                    info.size if info.isreg() else 0,
                    info.mode,
                    int(mtime),
                    info.linkname,
                    digest,
                )
            )
    return rows


def _rows(
    data: bytes, read_size: int = 1 << 20, after: bytes = b""
) -> list[tuple[str, bytes, int, int, int, str, str | None]]:
    return [
        (
            member.name.rstrip("/"),
            member.type,
            member.size,
            member.mode,
            int(member.mtime),
            member.linkname,
            digest,
        )
        for member, digest in _read_all(data, read_size, after)
    ]


def _gnu_tar(root: Path, *options: str) -> bytes:
    return subprocess.run(
        ["tar", *options, "--numeric-owner", "-cf", "-", "-C", str(root.parent), root.name],
        capture_output=True,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_every_kind_tree(tmp_path_factory.mktemp("tar-stream") / "tree")
    (root / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    return root


@pytest.mark.parametrize(
    "options",
    [
        ["--format=posix", "--pax-option=delete=atime,delete=ctime", "-b", "2048"],
        ["--format=posix"],
        ["--format=gnu"],
        ["--format=ustar"],
    ],
    ids=["ssh-source", "posix", "gnu", "ustar"],
)
def test_members_and_contents_match_tarfile_for_gnu_tar_formats(
    tree: Path, options: list[str]
) -> None:
    if "--format=ustar" in options:  # ustar cannot hold the tree's long name or fifo
        for name in ("a-fifo", "s.sock"):
            (tree / name).unlink(missing_ok=True)
        long_ones = [path for path in tree.rglob("*") if len(str(path.relative_to(tree))) > 99]
        options = [*options, *(f"--exclude={path.name}" for path in long_ones)]
    data = _gnu_tar(tree, *options)

    rows = _rows(data)

    assert rows == _expected(data)
    kinds = {row[1] for row in rows}
    assert {b"0", b"5", SYMLINK, HARDLINK} <= kinds
    names = {row[0] for row in rows}
    assert "tree/line\nbreak.txt" in names
    assert "tree/name with spaces é.txt" in names


def test_small_reads_and_unread_members_are_handled(tree: Path) -> None:
    data = _gnu_tar(tree, "--format=posix")
    assert _rows(data, read_size=777) == _rows(data)

    fd = _pipe_of(data)
    try:
        reader = TarStreamReader(fd)
        names = []
        while (member := reader.next()) is not None:  # never read a byte of any file
            names.append(member.name.rstrip("/"))
    finally:
        os.close(fd)
    assert names == [row[0] for row in _expected(data)]


def test_subsecond_mtimes_uids_and_large_sizes_from_pax_and_base_256() -> None:
    info = tarfile.TarInfo("huge.bin")
    info.size = 9 * 1024**3  # over 8 GiB: pax `size` in posix, base-256 in gnu
    info.mtime = 1_700_000_000.25
    info.uid = info.gid = 3_000_000  # over 2**21: pax or base-256 too
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        header = info.tobuf(fmt, "utf-8", "surrogateescape")
        fd = _pipe_of(header + b"x" * 4096)  # the stream ends long before 9 GiB
        try:
            reader = TarStreamReader(fd)
            member = reader.next()
            assert member is not None
            assert (member.name, member.size, member.uid, member.gid) == (
                "huge.bin",
                9 * 1024**3,
                3_000_000,
                3_000_000,
            )
            if fmt == tarfile.PAX_FORMAT:
                assert member.mtime == 1_700_000_000.25
            with pytest.raises(TarStreamError, match="ended inside a member"):
                reader.readinto(memoryview(bytearray(1 << 20)))
        finally:
            os.close(fd)


def _archive_of_one_file() -> bytes:
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("é-a.txt")  # a UTF-8 name: pax header, then ustar header
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    return stream.getvalue()


def test_bad_checksum_is_refused() -> None:
    data = bytearray(_archive_of_one_file())
    data[10] ^= 0x01  # inside the first header's name
    fd = _pipe_of(bytes(data))
    try:
        with pytest.raises(TarStreamError, match="checksum"):
            TarStreamReader(fd).next()
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("cut", "message"),
    [(0, "without its end-of-archive marker"), (700, "inside a header"), (1538, "inside a member")],
)
def test_a_stream_that_stops_early_is_an_error(cut: int, message: str) -> None:
    data = _archive_of_one_file()
    assert data.index(b"hello") == 1536  # pax header and its records, ustar header, bytes
    fd = _pipe_of(data[:cut])
    try:
        reader = TarStreamReader(fd)
        with pytest.raises(TarStreamError, match=message):
            member = reader.next()
            assert member is not None
            reader.readinto(memoryview(bytearray(100)))
    finally:
        os.close(fd)


def test_something_that_is_not_tar_is_refused() -> None:
    fd = _pipe_of(b"Welcome to my server! Last login: yesterday\n" * 40)
    try:
        with pytest.raises(TarStreamError):
            TarStreamReader(fd).next()
    finally:
        os.close(fd)


@pytest.mark.parametrize(("trailer", "ended"), [(b"", True), (bytes(6 << 20), False)])
def test_drain_reads_the_padding_but_not_an_endless_stream(trailer: bytes, ended: bool) -> None:
    fd = _pipe_of(_archive_of_one_file() + trailer)
    try:
        reader = TarStreamReader(fd)
        while reader.next() is not None:
            pass
        assert reader.drain() is ended
    finally:
        os.close(fd)


@pytest.mark.parametrize("greeting", [b"", b"welcome\n", b"no line break", b"x" * 200_000])
def test_what_comes_before_the_start_mark_is_skipped(tree: Path, greeting: bytes) -> None:
    """The remote script says OUTPUT_MARK before tar starts (sources/ssh_tar.py); a login
    shell's words before it, split anywhere by the pipe, are left out."""
    data = _gnu_tar(tree, "--format=posix")
    mark = b"\nmackuper-output-starts\n"
    assert _rows(greeting + mark + data, after=mark) == _expected(data)


def test_a_stream_without_its_start_mark_is_refused() -> None:
    mark = b"\nmackuper-output-starts\n"
    with pytest.raises(TarStreamError, match="ended before it started"):
        list(_read_all(b"motd only\n", after=mark))
    with pytest.raises(StartNotFound, match="over 256 KiB came before the stream's start"):
        list(_read_all(b"y" * 300_000 + mark, after=mark))
