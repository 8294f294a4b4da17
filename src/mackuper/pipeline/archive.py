"""Archive writers: entries in, archive bytes out to a `Sink`.

The tar writer writes POSIX pax archives: plain ustar headers built directly for
the common case (short ASCII names, sizes under 8 GiB), and `tarfile`'s pax
headers for long or UTF-8 names, large files and odd ids. Sub-second mtimes are
kept in a small pax record, and so is a directory's `GNU.dumpdir` in an incremental
archive (core/chain.py). File bytes are copied in 1 MiB reads. A file that
shrinks while it is read is padded with zeros to the size its header announced,
and reported: the archive stays valid and the run ends as `warning` rather than
publishing a corrupt archive.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from mackuper.core.filehash import FILE_HASH, Hash, new_file_hash
from mackuper.core.tarblock import header_sum
from mackuper.pipeline.streams import Sink, Writable
from mackuper.sources.base import Entry, EntryType, Reporter

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)

_TYPES = {
    EntryType.FILE: tarfile.REGTYPE,
    EntryType.DIRECTORY: tarfile.DIRTYPE,
    EntryType.SYMLINK: tarfile.SYMTYPE,
    EntryType.HARDLINK: tarfile.LNKTYPE,
}
_OCTAL_8 = 8**7
_OCTAL_12 = 8**11
_CHECKSUM_SPACES = b"        "
"""The checksum field as it is counted in the checksum."""
_USTAR_TAIL = b"ustar\x0000" + bytes(64) + b"0000000\x000000000\x00" + bytes(167)
"""A header's bytes from the magic on: version, empty user and group names (numeric
ids only), device numbers 0, no prefix (longer names are written as pax records)."""


class ArchiveWriter(Protocol):
    def add(self, entry: Entry, reporter: Reporter, item: dict[str, Any] | None = None) -> bool:
        """Write one entry; False when it was skipped (and reported).

        `item`: the entry's manifest entry; a file's hash (FILE_HASH, of the bytes stored) is
        set in it, at once or by a stage thread before `close` returns.
        """
        ...

    def close(self) -> None:
        """Write the archive's trailer and flush the sink."""
        ...


def open_entry(entry: Entry, reporter: Reporter) -> BinaryIO | None:
    """The entry's bytes, or None (reported) when the file vanished or is unreadable."""
    if entry.open is None:
        raise TypeError(f"file entry {entry.name} has no opener")
    try:
        return entry.open()
    except FileNotFoundError:
        reporter.problem(f"/{entry.name} vanished before it was read")
    except OSError as error:
        reporter.problem(f"cannot read /{entry.name}: {error.strerror}")
    return None


def copy_entry(
    entry: Entry,
    handle: BinaryIO,
    reporter: Reporter,
    emit: Callable[[bytes | memoryview], None],
    on_file_bytes: Callable[[int], None],
    buffer: bytearray | None = None,
    digest: Hash | None = None,
    into: Writable | None = None,
) -> None:
    """Send exactly `entry.size` bytes of `handle` to `emit`, and the same bytes into
    `digest`: the manifest's hash is of what the archive stores.

    `into`: the next stage's own free space is read into (`Writable`) instead of
    `buffer`, and `emit` only carries the zeros of a file that shrank. A file's bytes
    are then copied once, by the kernel, on their way to the compressor or the
    hand-off to the writing thread, and hashed here while they are in this core's
    cache.

    A file that shrank is completed with zeros, one that grew is cut at its
    announced size; both are reported. A read asks for one byte more than is left
    when it can, so growth is seen without another system call.
    """
    remaining = entry.size
    own = None
    if into is None:
        own = memoryview(buffer if buffer is not None else bytearray(min(CHUNK, remaining + 1)))
    grew = probed = False
    try:
        while remaining > 0:
            view = own if own is not None else into.writable()  # type: ignore[union-attr]
            wanted = min(len(view), remaining + 1)
            probed = wanted > remaining
            count = handle.readinto(view[:wanted])  # type: ignore[attr-defined]
            if not count:
                break
            if count > remaining:
                grew = True
                count = remaining
            if digest is not None:
                digest.update(view[:count])
            if own is not None:
                emit(view[:count])
            else:
                into.wrote(count)  # type: ignore[union-attr]
            on_file_bytes(count)
            remaining -= count
        if remaining == 0 and not grew and not probed:
            grew = bool(handle.read(1))
    except OSError as error:
        reporter.problem(f"reading /{entry.name} failed part-way: {error.strerror}")
    if remaining > 0:
        reporter.problem(
            f"/{entry.name} shrank while it was read;"
            f" {remaining} missing bytes were stored as zeros"
        )
        emit_zeros(remaining, emit, digest)
    elif grew:
        reporter.problem(
            f"/{entry.name} grew while it was read; stored its first {entry.size} bytes"
        )


def emit_zeros(
    count: int, emit: Callable[[bytes | memoryview], None], digest: Hash | None = None
) -> None:
    while count > 0:
        step = min(count, CHUNK)
        if digest is not None:
            digest.update(_ZEROS[:step])
        emit(_ZEROS[:step])
        count -= step


def _pax_record(keyword: str, value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode()
    payload = b" " + keyword.encode() + b"=" + raw + b"\n"
    length = len(payload)
    while len(str(length)) + len(payload) != length:
        length = len(str(length)) + len(payload)
    return str(length).encode() + payload


def _ustar(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    kind: bytes,
    link: bytes,
) -> bytes:
    """One ustar header block; the fields must fit (see `tar_header`).

    Built from two formatted halves around the checksum: 0.85 µs against 3.9 for
    filling a bytearray field by field and summing it in Python (one header per
    member; a remote tar stream of 20,309 members pays it on its critical path).
    """
    head = name.ljust(100, b"\0") + b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (
        mode,
        uid,
        gid,
        size,
        mtime,
    )
    tail = kind + link.ljust(100, b"\0") + _USTAR_TAIL
    checksum = header_sum(head + _CHECKSUM_SPACES + tail)
    return head + b"%06o\0 " % checksum + tail


def tar_header(entry: Entry) -> bytes:
    """The header block(s) of one entry in pax format, as GNU tar writes them (and
    `tarfile`, but for the device numbers of a non-device: "0000000" here, empty there)."""
    name = entry.name + ("/" if entry.type is EntryType.DIRECTORY else "")
    size = entry.size if entry.type is EntryType.FILE else 0
    mode = entry.mode & 0o7777
    whole = int(entry.mtime)
    simple = (
        name.isascii()
        and len(name) <= 100
        and entry.link_target.isascii()
        and len(entry.link_target) <= 100
        and 0 <= size < _OCTAL_12
        and 0 <= entry.uid < _OCTAL_8
        and 0 <= entry.gid < _OCTAL_8
        and 0 <= whole < _OCTAL_12
    )
    if not simple:
        return _tarfile_header(entry, name, size)
    header = _ustar(
        name.encode(),
        mode,
        entry.uid,
        entry.gid,
        size,
        whole,
        _TYPES[entry.type],
        entry.link_target.encode(),
    )
    if whole == entry.mtime and entry.dumpdir is None:
        return header
    records = b"" if whole == entry.mtime else _pax_record("mtime", str(entry.mtime))
    if entry.dumpdir is not None:
        # GNU tar's own incremental format in a POSIX archive (core/chain.py).
        records += _pax_record("GNU.dumpdir", entry.dumpdir)
    pax = _ustar(b"././@PaxHeader", 0o644, 0, 0, len(records), whole, tarfile.XHDTYPE, b"")
    return pax + records + bytes(-len(records) % BLOCK) + header


def _tarfile_header(entry: Entry, name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = _TYPES[entry.type]
    info.size = size
    info.mode = entry.mode & 0o7777
    info.mtime = entry.mtime
    info.uid = entry.uid
    info.gid = entry.gid
    info.linkname = entry.link_target
    if entry.dumpdir is not None:
        info.pax_headers = {"GNU.dumpdir": entry.dumpdir.decode("utf-8", "surrogateescape")}
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarWriter:
    """Writes entries as a tar stream to `sink`.

    When `sink` is `Writable` (the hand-off to a stage thread, or the tar.zst frame
    stage), files are read straight into its free space; otherwise through a 1 MiB
    buffer of our own. Each file's hash (BLAKE3, core/filehash.py; the measurements
    below were of SHA-256) is computed on the reading thread, right
    after each read: handing it to the stage thread instead (the archive hash and the
    writes run there) was measured slower, on the 1 GiB bench corpus, both from an
    SSH source (3.09 against 2.90 s) and from local files (2.30 against 1.60 s), with
    more CPU in all (docs/benchmarks.md, 2026-12-01 afternoon).
    """

    def __init__(self, sink: Sink, on_file_bytes: Callable[[int], None]) -> None:
        self.sink = sink
        self.on_file_bytes = on_file_bytes
        self.into = sink if isinstance(sink, Writable) else None
        self.offset = 0
        self.entry_offset = 0
        """Where the last entry added starts in the tar stream (its first header block)."""
        self.buffer = bytearray(CHUNK) if self.into is None else None
        """Reused for every file when the sink has no space of its own to read into."""
        self.padding = 0
        """Zeros owed after the last file's bytes (counted in `offset`, not yet written)."""

    def add(self, entry: Entry, reporter: Reporter, item: dict[str, Any] | None = None) -> bool:
        if entry.type is not EntryType.FILE:
            self._header(entry)
            return True
        handle = open_entry(entry, reporter)
        if handle is None:
            return False
        with handle:
            self._header(entry)
            self._copy(entry, handle, reporter, item)
        self.padding = -entry.size % BLOCK
        self.offset += entry.size + self.padding  # copy_entry wrote exactly size bytes
        return True

    def _header(self, entry: Entry) -> None:
        """The entry's header, after the zeros owed to the last file: one write less per file."""
        self.entry_offset = self.offset
        header = tar_header(entry)
        self.offset += len(header)
        if self.padding:
            header = _ZEROS[: self.padding] + header
            self.padding = 0
        self.sink.write(header)

    def _copy(
        self, entry: Entry, handle: BinaryIO, reporter: Reporter, item: dict[str, Any] | None
    ) -> None:
        digest = new_file_hash() if item is not None else None
        copy_entry(
            entry,
            handle,
            reporter,
            self.sink.write,
            self.on_file_bytes,
            self.buffer,
            digest,
            self.into,
        )
        if item is not None and digest is not None:
            item[FILE_HASH] = digest.hexdigest()

    def close(self) -> None:
        self.sink.write(_ZEROS[: self.padding] + bytes(2 * BLOCK))
        self.offset += 2 * BLOCK
        self.sink.write(bytes(-self.offset % RECORD))
        self.sink.close()
