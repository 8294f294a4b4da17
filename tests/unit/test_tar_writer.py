"""The tar writer's headers and padding, read back by Python's tarfile.

Headers are built by hand for speed (pipeline/archive.py `_ustar`), so they are read
back by tarfile and compared byte for byte with what it writes for the same fields; a file's padding
goes out with the next header, so the entries after a file (a directory, a file that
could not be opened, the end of the archive) are read back with their offsets.
"""

from __future__ import annotations

import io
import random
import tarfile
from collections.abc import Callable
from typing import Any, BinaryIO

import blake3
import pytest

from mackuper.pipeline.archive import TarWriter, tar_header
from mackuper.sources.base import Entry, EntryType

_TARFILE_TYPES = {
    EntryType.FILE: tarfile.REGTYPE,
    EntryType.DIRECTORY: tarfile.DIRTYPE,
    EntryType.SYMLINK: tarfile.SYMTYPE,
    EntryType.HARDLINK: tarfile.LNKTYPE,
}


class _Reporter:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def note(self, message: str) -> None:
        return None


class _Sink:
    """Keeps what is written; raises once `broken` is set."""

    def __init__(self) -> None:
        self.data = io.BytesIO()
        self.broken = False

    def write(self, data: bytes | memoryview) -> None:
        if self.broken:
            raise OSError("the destination went away")
        self.data.write(data)

    def close(self) -> None:
        return None


def _opener(data: bytes, opened: list[io.BytesIO]) -> Callable[[], BinaryIO]:
    def open_() -> BinaryIO:
        handle = io.BytesIO(data)
        opened.append(handle)
        return handle

    return open_


def _missing() -> BinaryIO:
    raise FileNotFoundError


def _file(name: str, data: bytes, opened: list[io.BytesIO]) -> Entry:
    return Entry(name, EntryType.FILE, len(data), 0o640, 1_700_000_000, open=_opener(data, opened))


def test_headers_are_the_ones_tarfile_writes() -> None:
    rng = random.Random(23)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_./ "
    for _ in range(3000):
        kind = rng.choice(list(EntryType))
        name = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 99))).strip("/")
        link = (
            "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 100)))
            if kind in (EntryType.SYMLINK, EntryType.HARDLINK)
            else ""
        )
        entry = Entry(
            name=name or "x",
            type=kind,
            size=rng.randrange(8**11) if kind is EntryType.FILE else 0,
            mode=rng.randrange(0o10000),
            mtime=rng.randrange(8**11),
            uid=rng.randrange(8**7),
            gid=rng.randrange(8**7),
            link_target=link,
        )
        info = tarfile.TarInfo(entry.name + ("/" if kind is EntryType.DIRECTORY else ""))
        info.type = _TARFILE_TYPES[kind]
        info.size, info.mode, info.mtime = entry.size, entry.mode, int(entry.mtime)
        info.uid, info.gid, info.linkname = entry.uid, entry.gid, link
        expected = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        header = tar_header(entry)
        read = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")  # checks the sum
        assert (read.name, read.type, read.size, read.mode, read.mtime) == (
            info.name.rstrip("/"),  # tarfile reads a directory's name without its slash
            info.type,
            info.size,
            info.mode,
            info.mtime,
        )
        assert (read.uid, read.gid, read.linkname) == (info.uid, info.gid, info.linkname)
        # Byte for byte, but for the checksum and the device numbers: GNU tar writes a
        # non-device's as "0000000", Python 3.11's tarfile leaves them empty.
        assert header[:148] + header[156:329] + header[345:] == (
            expected[:148] + expected[156:329] + expected[345:]
        ), entry
        assert header[329:345] == b"0000000\x000000000\x00"


def test_a_files_padding_is_written_before_whatever_comes_next() -> None:
    sink, reporter, opened = _Sink(), _Reporter(), []
    writer = TarWriter(sink, lambda count: None)
    contents = {
        "a.txt": b"abc",
        "b.bin": bytes(range(256)) * 3,
        "empty": b"",
        "c.txt": b"the last file",
    }
    entries = [
        _file("a.txt", contents["a.txt"], opened),
        Entry("gone.txt", EntryType.FILE, 5, 0o644, 1_700_000_000, open=_missing),
        Entry("dir", EntryType.DIRECTORY, 0, 0o755, 1_700_000_000),
        _file("b.bin", contents["b.bin"], opened),
        _file("empty", contents["empty"], opened),
        _file("c.txt", contents["c.txt"], opened),
    ]
    offsets: dict[str, int] = {}
    items: dict[str, dict[str, Any]] = {}
    for entry in entries:
        item: dict[str, Any] = {}
        if writer.add(entry, reporter, item):
            offsets[entry.name] = writer.entry_offset
            items[entry.name] = item
    writer.close()

    assert reporter.problems == ["/gone.txt vanished before it was read"]
    archive = sink.data.getvalue()
    assert len(archive) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = tar.getmembers()
        assert [member.name for member in members] == ["a.txt", "dir", "b.bin", "empty", "c.txt"]
        for member in members:
            assert offsets[member.name] == member.offset  # the manifest's index points here
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                data = handle.read()
                assert data == contents[member.name]
                assert items[member.name]["blake3"] == blake3.blake3(data).hexdigest()
    assert all(handle.closed for handle in opened)


def test_a_file_is_closed_when_its_header_cannot_be_written() -> None:
    sink, reporter, opened = _Sink(), _Reporter(), []
    writer = TarWriter(sink, lambda count: None)
    assert writer.add(_file("first.txt", b"12345", opened), reporter, {})
    sink.broken = True  # the next write carries first.txt's padding and second's header
    with pytest.raises(OSError, match="went away"):
        writer.add(_file("second.txt", b"67890", opened), reporter, {})
    assert len(opened) == 2
    assert all(handle.closed for handle in opened)
