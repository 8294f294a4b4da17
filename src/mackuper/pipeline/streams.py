"""Writable stages. Each wraps the next; `close()` flushes downstream (it never commits)."""

from __future__ import annotations

import bz2
import hashlib
import lzma
import zlib
from collections.abc import Callable
from typing import Protocol

import zstandard

from mackuper.destinations.base import ArtifactWriter, DestinationError
from mackuper.pipeline.errors import AllDestinationsFailed


class Sink(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...

    def close(self) -> None: ...


class _Compressor(Protocol):
    def compress(self, data: bytes | memoryview, /) -> bytes: ...

    def flush(self) -> bytes: ...


class CompressStage:
    """Any compressor object with `compress` and `flush` (zlib, bz2, lzma)."""

    def __init__(self, downstream: Sink, compressor: _Compressor) -> None:
        self.downstream = downstream
        self.compressor = compressor

    def write(self, data: bytes | memoryview) -> None:
        out = self.compressor.compress(data)
        if out:
            self.downstream.write(out)

    def close(self) -> None:
        tail = self.compressor.flush()
        if tail:
            self.downstream.write(tail)
        self.downstream.close()


class ZstdStage:
    """Zstandard with worker threads (the library compresses on several cores)."""

    def __init__(self, downstream: Sink, level: int, threads: int) -> None:
        self.downstream = downstream
        context = zstandard.ZstdCompressor(level=level, threads=threads)
        self.compressor = context.compressobj()

    def write(self, data: bytes | memoryview) -> None:
        out = self.compressor.compress(bytes(data))
        if out:
            self.downstream.write(out)

    def close(self) -> None:
        self.downstream.write(self.compressor.flush())
        self.downstream.close()


DEFAULT_LEVELS = {"tar.gz": 6, "tar.bz2": 9, "tar.xz": 3, "tar.zst": 3, "zip": 6}
LEVEL_RANGES = {
    "tar.gz": (1, 9),
    "tar.bz2": (1, 9),
    "tar.xz": (0, 9),
    "tar.zst": (1, 19),
    "zip": (0, 9),
}


def compress_stage(archive_format: str, level: int | None, downstream: Sink) -> Sink:
    """The compressor for a tar format (plain `tar` and `zip` need none)."""
    chosen = DEFAULT_LEVELS.get(archive_format) if level is None else level
    if archive_format == "tar.gz":
        return CompressStage(downstream, zlib.compressobj(chosen or 6, zlib.DEFLATED, 31))
    if archive_format == "tar.bz2":
        return CompressStage(downstream, bz2.BZ2Compressor(chosen or 9))
    if archive_format == "tar.xz":
        return CompressStage(downstream, lzma.LZMACompressor(preset=chosen))
    if archive_format == "tar.zst":
        return ZstdStage(downstream, chosen or 3, threads=-1)
    return downstream


class Meter:
    """Counts and hashes the bytes that reach the destinations."""

    def __init__(self, downstream: Sink, on_bytes: Callable[[int], None]) -> None:
        self.downstream = downstream
        self.on_bytes = on_bytes
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.digest.update(data)
        self.size += len(data)
        self.downstream.write(data)
        self.on_bytes(len(data))

    def close(self) -> None:
        self.downstream.close()

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


class FanOut:
    """Sends every byte to each destination writer still healthy.

    A destination that fails is dropped (its writer aborted, its error kept) and the
    others go on; when none is left the backup fails.
    """

    def __init__(self, writers: dict[int, ArtifactWriter]) -> None:
        self.writers = dict(writers)
        self.errors: dict[int, DestinationError] = {}

    def write(self, data: bytes | memoryview) -> None:
        for destination_id, writer in list(self.writers.items()):
            try:
                writer.write(data)
            except DestinationError as error:
                self._drop(destination_id, error)
        if not self.writers:
            raise AllDestinationsFailed(self.describe_errors())

    def _drop(self, destination_id: int, error: DestinationError) -> None:
        writer = self.writers.pop(destination_id)
        writer.abort()
        self.errors[destination_id] = error

    def close(self) -> None:
        return None

    def describe_errors(self) -> str:
        return "; ".join(str(error) for error in self.errors.values()) or "no destination"
