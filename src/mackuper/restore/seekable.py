"""Chosen members of a tar or tar.zst archive, fetched by ranged reads.

The manifest of such an archive gives each entry's `offset` in the tar stream
and an `index` (pipeline/seekable.py): for tar.zst, the compressed size of each
independent zstd frame of `frame_size` tar bytes. Entries to read are grouped
into spans of neighbours; each span is read from its first header with ranged
reads of just the frames it covers (through the age chunks when the archive is
encrypted, pipeline/age_ranges.py), and `tarfile` reads exactly the span's
members from there. Archives without an index are read as one stream instead
(`open_members`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, cast

import zstandard

from mackuper.destinations.base import Destination, DestinationError
from mackuper.pipeline.seekable import INDEX_SCHEME, PLAIN_TAR_SCHEME
from mackuper.restore.archives import StoredArchive, open_members
from mackuper.restore.errors import RestoreError
from mackuper.restore.formats import Member, Opener, iter_tar_members
from mackuper.restore.storage import object_size

MAX_FRAME_SIZE = 64 << 20
"""A larger frame size in a manifest is refused (it would be held in memory)."""
PLAIN_BLOCK = 1 << 20
"""Blocks a plain tar is read in."""
BATCH = 16 << 20
"""Stored bytes fetched by one ranged read at most."""
HEADER_SLACK = 4096

Members = Iterator[tuple[Member, "Opener | None"]]
Selected = Callable[[str], bool]


class Ranges(Protocol):
    size: int

    def read(self, offset: int, length: int) -> bytes: ...


class StoredRanges:
    """Ranges of a stored object; `on_bytes` sees every fetched piece."""

    def __init__(
        self,
        destination: Destination,
        key: str,
        on_bytes: Callable[[bytes], None] | None = None,
    ) -> None:
        self.destination = destination
        self.key = key
        self.size = object_size(destination, key)
        self.on_bytes = on_bytes

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        data = self.destination.read_range(self.key, offset, length)
        if len(data) != length:
            raise DestinationError(
                f"{self.key} at {self.destination.describe()} changed while it was read"
            )
        if self.on_bytes is not None:
            self.on_bytes(data)
        return data


@dataclass(frozen=True)
class Index:
    """Where each block of the tar stream starts in the (decrypted) stored object."""

    block_size: int
    starts: list[int]
    """Stored offset of each block, and the end of the last one."""
    compressed: bool


def read_index(manifest: dict[str, Any], stream_size: int) -> Index | None:
    """The manifest's index when it is there and fits an object of `stream_size`."""
    index = manifest.get("index")
    if not isinstance(index, dict):
        return None
    if index.get("scheme") == PLAIN_TAR_SCHEME:
        starts = [*range(0, stream_size, PLAIN_BLOCK), stream_size]
        return Index(PLAIN_BLOCK, starts, compressed=False)
    frames, frame_size = index.get("frames"), index.get("frame_size")
    if index.get("scheme") != INDEX_SCHEME or not isinstance(frames, list):
        return None
    if not isinstance(frame_size, int) or not 0 < frame_size <= MAX_FRAME_SIZE:
        return None
    starts = [0]
    for size in frames:
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            return None
        starts.append(starts[-1] + size)
    # The seek table written after the frames is a skippable frame of 8 bytes a frame + 17.
    if starts[-1] + 8 * len(frames) + 17 != stream_size:
        return None
    return Index(frame_size, starts, compressed=True)


class BlockReader(io.RawIOBase):
    """The tar stream from `start`, fetching only the blocks (frames) it reaches.

    Blocks up to the one holding `until` are fetched together (BATCH bytes at
    most a read); past it, one at a time.
    """

    def __init__(self, ranges: Ranges, index: Index, start: int, until: int) -> None:
        super().__init__()
        self.ranges = ranges
        self.index = index
        self.block = start // index.block_size
        self.last_wanted = until // index.block_size
        self.fetched: list[bytes] = []
        self.plain = memoryview(b"")
        self.skip = start - self.block * index.block_size
        self.decompressor = zstandard.ZstdDecompressor()

    def readable(self) -> bool:
        return True

    def _fetch(self) -> None:
        starts, first = self.index.starts, self.block
        end = first + 1
        while end <= self.last_wanted and end < len(starts) - 1:
            if starts[end + 1] - starts[first] > BATCH:
                break
            end += 1
        data = self.ranges.read(starts[first], starts[end] - starts[first])
        if len(data) != starts[end] - starts[first]:
            raise RestoreError("the archive is shorter than its index says")
        self.fetched = [
            data[starts[block] - starts[first] : starts[block + 1] - starts[first]]
            for block in range(first, end)
        ]

    def _next_block(self) -> bool:
        if self.block >= len(self.index.starts) - 1:
            return False
        if not self.fetched:
            self._fetch()
        stored = self.fetched.pop(0)
        plain = stored
        if self.index.compressed:
            try:
                plain = self.decompressor.decompress(stored, max_output_size=self.index.block_size)
            except zstandard.ZstdError as error:
                raise RestoreError(f"the archive does not match its index ({error})") from None
            if len(plain) != self.index.block_size and self.block < len(self.index.starts) - 2:
                raise RestoreError("the archive does not match its index (a short frame)")
        self.block += 1
        self.plain = memoryview(plain)[self.skip :]
        self.skip = 0
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.plain:
            if not self._next_block():
                return 0
        count = min(len(buffer), len(self.plain))
        buffer[:count] = self.plain[:count]
        self.plain = self.plain[count:]
        return count


@dataclass
class Span:
    start: int
    """Where the first member of the span starts in the tar stream."""
    end: int
    """About where the last one ends (its header is not counted)."""
    first: int
    last: int
    """Positions of the first and last member in the archive."""

    @property
    def members(self) -> int:
        return self.last - self.first + 1


def spans(entries: list[tuple[int, int]], chosen: set[int], gap: int) -> list[Span]:
    """Runs of the chosen entries (offset, size): neighbours less than `gap` apart are
    joined, with the entries between them, into one read."""
    result: list[Span] = []
    for position in sorted(chosen):
        offset, size = entries[position]
        if result and offset - result[-1].end < gap:
            result[-1].last = position
            result[-1].end = max(result[-1].end, offset + size)
        else:
            result.append(Span(offset, offset + size, position, position))
    return result


def _entries(manifest: dict[str, Any]) -> list[tuple[int, int, str]] | None:
    """(offset, size, path) of every entry in archive order; None when any lacks one."""
    files = manifest.get("files")
    if not isinstance(files, list):
        return None
    entries: list[tuple[int, int, str]] = []
    for item in files:
        if not isinstance(item, dict):
            return None
        if "archive" in item:
            continue  # an incremental point's entry stored in an earlier archive (core/chain.py)
        offset, size, path = item.get("offset"), item.get("size", 0), item.get("path")
        if not isinstance(offset, int) or not isinstance(path, str) or not isinstance(size, int):
            return None
        entries.append((offset, max(size, 0), path))
    if any(earlier[0] >= later[0] for earlier, later in zip(entries, entries[1:], strict=False)):
        return None
    return entries


def _open_ranges(archive: StoredArchive, on_bytes: Callable[[bytes], None] | None) -> Ranges:
    stored = StoredRanges(archive.destination, archive.key, on_bytes)
    if not archive.encrypted:
        return stored
    from mackuper.pipeline.age_ranges import AgeRanges

    if not archive.keys:
        raise RestoreError(
            "this backup is encrypted: give its age identity or passphrase to restore it"
        )
    return AgeRanges(stored.read, stored.size, archive.keys.identities, archive.keys.passphrase)


def _span_members(ranges: Ranges, index: Index, span: Span) -> Members:
    # A member's header (with pax records) is rarely over a few KiB past `end`.
    until = span.end + HEADER_SLACK
    reader = io.BufferedReader(BlockReader(ranges, index, span.start, until), 1 << 20)
    members = iter_tar_members(cast(BinaryIO, reader))
    try:
        for _ in range(span.members):
            found = next(members, None)
            if found is None:
                raise RestoreError("the archive does not match its index (a member is missing)")
            yield found
    finally:
        close = getattr(members, "close", None)
        if close is not None:
            close()


@contextlib.contextmanager
def open_selected(
    archive: StoredArchive,
    manifest: dict[str, Any] | None,
    selected: Selected,
    on_bytes: Callable[[bytes], None] | None = None,
) -> Iterator[Members]:
    """Members of the archive that include every entry whose path `selected` accepts.

    With an index, only those (and neighbours read on the way) are fetched, by
    ranged reads; without one, every member of the archive, read as one stream.
    Callers filter what they get either way. Raises RestoreError.
    """
    entries = _entries(manifest) if manifest is not None else None
    if entries is None or archive.archive_format not in {"tar", "tar.zst"}:
        with open_members(archive, on_bytes) as members:
            yield members
        return
    ranges = _open_ranges(archive, on_bytes)
    index = read_index(manifest or {}, ranges.size)
    if index is None:
        with open_members(archive, on_bytes) as members:
            yield members
        return
    chosen = {position for position, entry in enumerate(entries) if selected(entry[2])}
    pairs = [(offset, size) for offset, size, _path in entries]
    found = spans(pairs, chosen, 2 * index.block_size)

    def span_members() -> Members:
        for span in found:
            yield from _span_members(ranges, index, span)

    yield span_members()
