"""Reading stored objects back: as a stream, as a seekable file, or by presigned URL.

Everything goes through the destination protocol (destinations/base.py): whole
objects stream with `iter_chunks`; ZIP needs random access to its central
directory, so `open_seekable` reads blocks with `read_range`, whatever the kind.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import BinaryIO

from mackuper.destinations.base import Destination, DestinationError, content_disposition

__all__ = [
    "BLOCK_SIZE",
    "ChunkReader",
    "RangedReader",
    "content_disposition",
    "object_size",
    "open_seekable",
    "open_stream",
]

BLOCK_SIZE = 4 * 1024 * 1024


class ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of chunks; `on_bytes` sees every chunk."""

    def __init__(
        self, chunks: Iterator[bytes], on_bytes: Callable[[bytes], None] | None = None
    ) -> None:
        self.chunks = chunks
        self.on_bytes = on_bytes
        self.pending = b""
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            if self.on_bytes is not None:
                self.on_bytes(chunk)
            self.pending = chunk
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        self.position += count
        return count

    def tell(self) -> int:
        return self.position


def open_stream(
    destination: Destination, key: str, on_bytes: Callable[[bytes], None] | None = None
) -> BinaryIO:
    """The object's bytes as a buffered stream, read once from start to end."""
    raw = ChunkReader(iter(destination.iter_chunks(key, 1 << 20)), on_bytes)
    return io.BufferedReader(raw, 1 << 20)


class RangedReader(io.RawIOBase):
    """A seekable view of a stored object that fetches blocks with ranged reads."""

    def __init__(
        self, destination: Destination, key: str, size: int, block_size: int = BLOCK_SIZE
    ) -> None:
        self.destination = destination
        self.key = key
        self.size = size
        self.block_size = block_size
        self.fetched = 0
        self.position = 0
        self.block_start = -1
        self.block = b""
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def _fetch(self, start: int) -> None:
        length = min(self.size, start + self.block_size) - start
        self.block = self.destination.read_range(self.key, start, length)
        if len(self.block) != length:
            raise DestinationError(
                f"{self.key} at {self.destination.describe()} changed while it was read"
                f" ({len(self.block)} bytes where {length} were expected at {start})"
            )
        self.block_start = start
        self.requests += 1
        self.fetched += len(self.block)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.position >= self.size or not len(buffer):
            return 0
        inside = self.block_start <= self.position < self.block_start + len(self.block)
        if not inside:
            self._fetch(self.position)
        offset = self.position - self.block_start
        count = min(len(buffer), len(self.block) - offset)
        buffer[:count] = self.block[offset : offset + count]
        self.position += count
        return count


def object_size(destination: Destination, key: str) -> int:
    """The stored object's size in bytes; raises DestinationError when it is missing."""
    stored = destination.stat(key)
    if stored is None:
        raise DestinationError(f"{key} does not exist at {destination.describe()}")
    return stored.size


def open_seekable(destination: Destination, key: str) -> BinaryIO:
    """A seekable reader of the object, by ranged reads."""
    raw = RangedReader(destination, key, object_size(destination, key))
    return io.BufferedReader(raw, 64 * 1024)
