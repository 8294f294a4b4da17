"""A streaming ZIP writer: deflate per file, data descriptors, ZIP64 when needed.

Sizes and CRCs follow each file's data (general purpose flag bit 3), so nothing is
seeked back and nothing is staged. ZIP64 fields are written for files that may
reach 4 GiB, offsets past 4 GiB and archives of more than 65,535 entries. Unix
modes and symlinks go in the external attributes (made by Unix) and the exact
mtime in the "UT" extra field, which is what Info-ZIP `unzip` restores.
"""

from __future__ import annotations

import stat
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mackuper.core.filehash import FILE_HASH, Hash, new_file_hash
from mackuper.pipeline.archive import copy_entry, open_entry
from mackuper.pipeline.streams import Sink
from mackuper.sources.base import Entry, EntryType, Reporter

_LOCAL = 0x04034B50
_DESCRIPTOR = 0x08074B50
_CENTRAL = 0x02014B50
_END = 0x06054B50
_END64 = 0x06064B50
_LOCATOR64 = 0x07064B50
_MADE_BY_UNIX = (3 << 8) | 45
_FLAG_DESCRIPTOR = 0x08
_FLAG_UTF8 = 0x800
_STORED = 0
_DEFLATED = 8
_LIMIT32 = 0xFFFFFFFF
_LIMIT16 = 0xFFFF
# Deflate can make incompressible data slightly larger; leave room for that.
_ZIP64_FILE_THRESHOLD = 0xFFFFFFFF - (1 << 26)


@dataclass
class _Member:
    name: bytes
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc: int
    compressed: int
    size: int
    offset: int
    external: int
    mtime: int


def _dos_time(mtime: float) -> tuple[int, int]:
    moment = time.localtime(max(mtime, 315532800))
    year = min(max(moment.tm_year, 1980), 2107)
    date = (year - 1980) << 9 | moment.tm_mon << 5 | moment.tm_mday
    clock = moment.tm_hour << 11 | moment.tm_min << 5 | moment.tm_sec // 2
    return clock, date


def _unix_time_extra(mtime: float) -> bytes:
    seconds = min(max(int(mtime), -(2**31)), 2**31 - 1)
    return struct.pack("<HHBi", 0x5455, 5, 1, seconds)


class ZipWriter:
    def __init__(self, sink: Sink, on_file_bytes: Callable[[int], None], level: int = 6) -> None:
        self.sink = sink
        self.on_file_bytes = on_file_bytes
        self.level = level
        self.offset = 0
        self.members: list[_Member] = []

    def _write(self, data: bytes | memoryview) -> None:
        self.sink.write(data)
        self.offset += len(data)

    def add(self, entry: Entry, reporter: Reporter, item: dict[str, Any] | None = None) -> bool:
        if entry.type is EntryType.DIRECTORY:
            self._stored(entry, entry.name + "/", b"", stat.S_IFDIR, 0x10)
            return True
        if entry.type is EntryType.SYMLINK:
            self._stored(
                entry,
                entry.name,
                entry.link_target.encode(errors="surrogateescape"),
                stat.S_IFLNK,
                0,
            )
            return True
        # ZIP has no hard links: a hard link is stored again as a whole file.
        handle = open_entry(entry, reporter)
        if handle is None:
            return False
        digest = new_file_hash() if item is not None and entry.type is EntryType.FILE else None
        with handle:
            self._deflated(entry, handle, reporter, digest)
        if digest is not None and item is not None:
            item[FILE_HASH] = digest.hexdigest()
        return True

    def _header(self, member: _Member, zip64: bool) -> None:
        extra = _unix_time_extra(member.mtime)
        sizes = (member.compressed, member.size)
        if zip64:
            extra += struct.pack("<HHQQ", 0x0001, 16, 0, 0)
            sizes = (_LIMIT32, _LIMIT32)
        self._write(
            struct.pack(
                "<IHHHHHIIIHH",
                _LOCAL,
                45 if zip64 else 20,
                member.flags,
                member.method,
                member.dos_time,
                member.dos_date,
                member.crc,
                *sizes,
                len(member.name),
                len(extra),
            )
            + member.name
            + extra
        )

    def _member(self, entry: Entry, name: str, method: int, file_type: int, dos: int) -> _Member:
        encoded = name.encode("utf-8", "surrogateescape")
        flags = 0 if name.isascii() else _FLAG_UTF8
        clock, date = _dos_time(entry.mtime)
        return _Member(
            name=encoded,
            flags=flags,
            method=method,
            dos_time=clock,
            dos_date=date,
            crc=0,
            compressed=0,
            size=0,
            offset=self.offset,
            external=((file_type | (entry.mode & 0o7777)) << 16) | dos,
            mtime=int(entry.mtime),
        )

    def _stored(self, entry: Entry, name: str, data: bytes, file_type: int, dos: int) -> None:
        member = self._member(entry, name, _STORED, file_type, dos)
        member.crc = zlib.crc32(data)
        member.compressed = member.size = len(data)
        self._header(member, zip64=False)
        self._write(data)
        self.members.append(member)

    def _deflated(
        self, entry: Entry, handle: object, reporter: Reporter, digest: Hash | None
    ) -> None:
        member = self._member(entry, entry.name, _DEFLATED, stat.S_IFREG, 0)
        member.flags |= _FLAG_DESCRIPTOR
        zip64 = entry.size >= _ZIP64_FILE_THRESHOLD
        self._header(member, zip64)
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        start = self.offset
        crc = 0
        size = 0

        def emit(data: bytes | memoryview) -> None:
            nonlocal crc, size
            crc = zlib.crc32(data, crc)
            size += len(data)
            out = compressor.compress(data)
            if out:
                self._write(out)

        copy_entry(entry, handle, reporter, emit, self.on_file_bytes, None, digest)  # type: ignore[arg-type]
        self._write(compressor.flush())
        member.crc = crc
        member.size = size
        member.compressed = self.offset - start
        if zip64 or max(member.size, member.compressed) >= _LIMIT32:
            if not zip64:
                raise OSError(f"/{entry.name} grew past 4 GiB while it was read")
            self._write(struct.pack("<IIQQ", _DESCRIPTOR, crc, member.compressed, size))
        else:
            self._write(struct.pack("<IIII", _DESCRIPTOR, crc, member.compressed, size))
        self.members.append(member)

    def _central(self, member: _Member) -> bytes:
        wide: list[int] = []
        size, compressed, offset = member.size, member.compressed, member.offset
        if size >= _LIMIT32:
            wide.append(size)
            size = _LIMIT32
        if compressed >= _LIMIT32:
            wide.append(compressed)
            compressed = _LIMIT32
        if offset >= _LIMIT32:
            wide.append(offset)
            offset = _LIMIT32
        extra = struct.pack("<HHBi", 0x5455, 5, 1, member.mtime)
        if wide:
            extra += struct.pack(f"<HH{len(wide)}Q", 0x0001, 8 * len(wide), *wide)
        return (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                _CENTRAL,
                _MADE_BY_UNIX,
                45 if wide else 20,
                member.flags,
                member.method,
                member.dos_time,
                member.dos_date,
                member.crc,
                compressed,
                size,
                len(member.name),
                len(extra),
                0,
                0,
                0,
                member.external,
                offset,
            )
            + member.name
            + extra
        )

    def close(self) -> None:
        start = self.offset
        batch = bytearray()
        for member in self.members:
            batch += self._central(member)
            if len(batch) >= 1 << 20:
                self._write(bytes(batch))
                batch = bytearray()
        self._write(bytes(batch))
        length = self.offset - start
        count = len(self.members)
        if count >= _LIMIT16 or length >= _LIMIT32 or start >= _LIMIT32:
            end64 = self.offset
            self._write(
                struct.pack(
                    "<IQHHIIQQQQ", _END64, 44, _MADE_BY_UNIX, 45, 0, 0, count, count, length, start
                )
            )
            self._write(struct.pack("<IIQI", _LOCATOR64, 0, end64, 1))
        self._write(
            struct.pack(
                "<IHHHHIIH",
                _END,
                0,
                0,
                min(count, _LIMIT16),
                min(count, _LIMIT16),
                min(length, _LIMIT32),
                min(start, _LIMIT32),
                0,
            )
        )
        self.sink.close()
