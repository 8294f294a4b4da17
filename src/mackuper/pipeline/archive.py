"""Archive writers: entries in, archive bytes out to a `Sink`.

The tar writer builds headers with `tarfile` (POSIX pax format, so long and UTF-8
names, large files and sub-second mtimes survive) and copies file bytes itself in
1 MiB reads. A file that shrinks while it is read is padded with zeros to the size
its header announced, and reported: the archive stays valid and the run ends as
`warning` rather than publishing a corrupt archive.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from typing import Protocol

from mackuper.pipeline.streams import Sink
from mackuper.sources.base import Entry, EntryType, Reporter

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
CHUNK = 1 << 20

_TYPES = {
    EntryType.FILE: tarfile.REGTYPE,
    EntryType.DIRECTORY: tarfile.DIRTYPE,
    EntryType.SYMLINK: tarfile.SYMTYPE,
    EntryType.HARDLINK: tarfile.LNKTYPE,
}


class ArchiveWriter(Protocol):
    def add(self, entry: Entry, reporter: Reporter) -> bool:
        """Write one entry; False when it was skipped (and reported)."""
        ...

    def close(self) -> None:
        """Write the archive's trailer and flush the sink."""
        ...


class TarWriter:
    def __init__(self, sink: Sink, on_file_bytes: Callable[[int], None]) -> None:
        self.sink = sink
        self.on_file_bytes = on_file_bytes
        self.offset = 0

    def _write(self, data: bytes | memoryview) -> None:
        self.sink.write(data)
        self.offset += len(data)

    def _header(self, entry: Entry) -> bytes:
        info = tarfile.TarInfo(entry.name + ("/" if entry.type is EntryType.DIRECTORY else ""))
        info.type = _TYPES[entry.type]
        info.size = entry.size if entry.type is EntryType.FILE else 0
        info.mode = entry.mode
        info.mtime = entry.mtime
        info.uid = entry.uid
        info.gid = entry.gid
        info.linkname = entry.link_target
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def add(self, entry: Entry, reporter: Reporter) -> bool:
        if entry.type is not EntryType.FILE:
            self._write(self._header(entry))
            return True
        if entry.open is None:
            raise TypeError(f"file entry {entry.name} has no opener")
        try:
            handle = entry.open()
        except FileNotFoundError:
            reporter.problem(f"/{entry.name} vanished before it was read")
            return False
        except OSError as error:
            reporter.problem(f"cannot read /{entry.name}: {error.strerror}")
            return False
        with handle:
            self._write(self._header(entry))
            remaining = entry.size
            buffer = bytearray(CHUNK)
            view = memoryview(buffer)
            try:
                while remaining > 0:
                    count = handle.readinto(view[: min(CHUNK, remaining)])  # type: ignore[attr-defined]
                    if not count:
                        break
                    self._write(view[:count])
                    self.on_file_bytes(count)
                    remaining -= count
            except OSError as error:
                reporter.problem(f"reading /{entry.name} failed part-way: {error.strerror}")
            if remaining > 0:
                reporter.problem(
                    f"/{entry.name} shrank while it was read;"
                    f" {remaining} missing bytes were stored as zeros"
                )
                self._pad(remaining)
            elif handle.read(1):
                reporter.problem(
                    f"/{entry.name} grew while it was read; stored its first {entry.size} bytes"
                )
        self._pad(-entry.size % BLOCK)
        return True

    def _pad(self, count: int) -> None:
        zeros = bytes(min(count, CHUNK))
        while count > 0:
            step = min(count, len(zeros))
            self._write(zeros[:step])
            count -= step

    def close(self) -> None:
        self._write(bytes(2 * BLOCK))
        self._pad(-self.offset % RECORD)
        self.sink.close()
