"""Writable stages. Each wraps the next; `close()` flushes downstream (it never commits)."""

from __future__ import annotations

import bz2
import lzma
import os
import queue
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, runtime_checkable

from isal import isal_zlib

from mackuper.core.filehash import ARCHIVE_HASH, hash_for
from mackuper.destinations.base import ArtifactWriter, DestinationError
from mackuper.pipeline.errors import AllDestinationsFailed
from mackuper.pipeline.seekable import SeekableZstdStage


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


GZIP_BLOCK = 1 << 20
_DEFLATE_WINDOW = 32 * 1024
_PROBE = 32 * 1024
_STORED_SHARE = 0.97
"""A block whose fast deflate keeps at least this share of its size barely compresses."""


def _barely_compresses(block: bytes | bytearray) -> bool:
    """Whether a 32 KiB sample from the middle of `block` deflates by less than 3%."""
    middle = max(0, len(block) // 2 - _PROBE // 2)
    sample = block[middle : middle + _PROBE]
    return len(isal_zlib.compress(sample, 0, -15)) >= _STORED_SHARE * len(sample)


def _deflate_block(block: bytes | bytearray, dictionary: bytes | None, level: int) -> bytes:
    """One raw deflate block ended by a sync flush, with the last block's window.

    Data that does not compress (already compressed or encrypted files, media) is
    deflated by ISA-L at its fastest level, which stores it about as zlib -6 does
    (the archive is as large) for a seventeenth of the CPU; the rest by zlib at
    `level`, because ISA-L's best level (3) leaves the compressible part ~20% larger
    than zlib -6 (docs/benchmarks.md, "gzip").
    """
    if level > 0 and _barely_compresses(block):
        fast = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15, 8, 0, dictionary or b"")
        out: bytes = fast.compress(block) + fast.flush(isal_zlib.Z_SYNC_FLUSH)
        if len(out) >= _STORED_SHARE * len(block):
            return out
    if dictionary:
        compressor = zlib.compressobj(
            level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary
        )
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)


class ParallelGzipStage:
    """gzip on several cores, the way pigz does it.

    The stream is cut into 1 MiB blocks, each deflated by a pool thread with the
    previous block's last 32 KiB as dictionary and ended with a sync flush, so the
    concatenation is one ordinary deflate stream inside one gzip member. zlib and
    ISA-L release the GIL while they compress.

    Why not `isal.igzip_threaded` (the maintained library doing the same): at its
    best level its archive of the 1 GiB bench corpus is 4.7% larger than pigz -6's,
    over the 2% allowed; so zlib keeps the compressible blocks and ISA-L takes only
    those that do not compress, where it is ~17 times cheaper than zlib -6 for the
    same bytes out (issue 23; docs/benchmarks.md, "gzip").
    """

    def __init__(self, downstream: Sink, level: int, threads: int) -> None:
        self.downstream = downstream
        self.level = level
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="gzip")
        self.pending: deque[Future[bytes]] = deque()
        self.buffer = bytearray()
        self.previous: bytes | None = None
        self.crc = 0
        self.length = 0
        self.downstream.write(
            b"\x1f\x8b\x08\x00" + struct.pack("<I", int(time.time())) + b"\x00\x03"
        )

    def write(self, data: bytes | memoryview) -> None:
        self.buffer += data
        while len(self.buffer) >= GZIP_BLOCK:
            block = bytes(self.buffer[:GZIP_BLOCK])
            del self.buffer[:GZIP_BLOCK]
            self._submit(block)

    def _submit(self, block: bytes) -> None:
        self.crc = zlib.crc32(block, self.crc)
        self.length += len(block)
        self.pending.append(self.pool.submit(_deflate_block, block, self.previous, self.level))
        self.previous = block[-_DEFLATE_WINDOW:]
        while len(self.pending) > self.threads:
            self.downstream.write(self.pending.popleft().result())

    def close(self) -> None:
        try:
            if self.buffer:
                self._submit(bytes(self.buffer))
                self.buffer.clear()
            while self.pending:
                self.downstream.write(self.pending.popleft().result())
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        # An empty final fixed-Huffman block ends the deflate stream.
        self.downstream.write(b"\x03\x00" + struct.pack("<II", self.crc, self.length & 0xFFFFFFFF))
        self.downstream.close()

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


DEFAULT_LEVELS = {"tar.gz": 6, "tar.bz2": 9, "tar.xz": 3, "tar.zst": 3, "zip": 6}
LEVEL_RANGES = {
    "tar.gz": (1, 9),
    "tar.bz2": (1, 9),
    "tar.xz": (0, 9),
    "tar.zst": (1, 19),
    "zip": (0, 9),
}


def compressor_threads() -> int:
    """Threads for compressors that can use several cores: every core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def compress_stage(
    archive_format: str, level: int | None, downstream: Sink, *, disk_bound: bool = False
) -> Sink:
    """The compressor for a tar format (plain `tar` and `zip` need none).

    `disk_bound`: every destination is a local directory, so compression speed sets
    the pace. Then zstd gets two workers of its own. Uploads are paced by the
    network, where a second zstd worker only adds memory: in the benchmark it took
    a backup to S3 from 120 to 164 MiB peak, over the 150 MiB budget. (Measured with
    zstd's own workers; tar.zst is now written as independent frames, compressed
    on that many pool threads: `pipeline/seekable.py`.)
    """
    chosen = DEFAULT_LEVELS.get(archive_format) if level is None else level
    if archive_format == "tar.gz":
        return ParallelGzipStage(downstream, 6 if chosen is None else chosen, compressor_threads())
    if archive_format == "tar.bz2":
        return CompressStage(downstream, bz2.BZ2Compressor(chosen or 9))
    if archive_format == "tar.xz":
        return CompressStage(downstream, lzma.LZMACompressor(preset=chosen))
    if archive_format == "tar.zst":
        cores = compressor_threads()
        threads = 2 if cores >= 4 or (disk_bound and cores >= 2) else 0
        return SeekableZstdStage(downstream, chosen or 3, threads=threads)
    return downstream


HANDOFF_SIZE = 1 << 20
HANDOFF_DEPTH = 2
"""Two pieces waiting per stage, and at most threads + 1 gzip blocks in flight: through
the service (issue 23, docs/benchmarks.md) the worker's peak for tar.gz went from
147-150 to 131-133 MiB and for tar.zst by 2-4 MiB against four pieces and two blocks
per thread, with the same run times (tar.zst 1.05x tar|zstd, tar.gz 0.91x pigz)."""


@runtime_checkable
class Writable(Protocol):
    """A sink with room of its own that a writer may read file bytes straight into."""

    def writable(self) -> memoryview:
        """The free space (at least one byte) that `wrote` fills from its start."""
        ...

    def wrote(self, count: int) -> None:
        """`count` bytes of the space last given out are filled."""
        ...


class BackgroundStage:
    """Hands the bytes to a thread that runs everything downstream.

    Writes are gathered into fixed 1 MiB pieces; at most `HANDOFF_DEPTH` pieces
    wait, so memory stays bounded. Pieces are reused once the thread has passed
    them on (every stage copies what it keeps, so nothing downstream holds on to
    one): a backup allocates a handful of pieces, not one per MiB, which spares a
    page fault per 4 KiB on every MiB (see docs/benchmarks.md). An error downstream
    is raised from the next `write` or from `close`.
    """

    def __init__(self, downstream: Sink) -> None:
        self.downstream = downstream
        self.piece = bytearray(HANDOFF_SIZE)
        self.filled = 0
        self.queue: queue.Queue[tuple[bytearray | bytes, int] | None] = queue.Queue(HANDOFF_DEPTH)
        self.spare: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            piece, length = item
            if self.error is None and not self.stopped:
                try:
                    self.downstream.write(memoryview(piece)[:length])
                except BaseException as error:  # noqa: BLE001 - handed to the writing thread
                    self.error = error
            if isinstance(piece, bytearray):
                self.spare.put(piece)
        if self.error is None and not self.stopped:
            try:
                self.downstream.close()
            except BaseException as error:  # noqa: BLE001 - handed to the writing thread
                self.error = error

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def write(self, data: bytes | memoryview) -> None:
        self._check()
        size = len(data)
        filled = self.filled
        if filled + size < HANDOFF_SIZE:
            self.piece[filled : filled + size] = data
            self.filled = filled + size
            return
        view = memoryview(data).cast("B")
        while view:
            step = min(HANDOFF_SIZE - self.filled, len(view))
            self.piece[self.filled : self.filled + step] = view[:step]
            self.filled += step
            view = view[step:]
            if self.filled == HANDOFF_SIZE:
                self._hand_over()

    def give(self, data: bytes) -> None:
        """`write` for bytes the caller is done with (a compressed frame): handed to the
        thread as they are, not copied into a piece. tar.zst through the service: the
        copy of each frame took ~0.25 s of the tar writer's thread per GiB read."""
        self._check()
        if self.filled:
            self._hand_over()
        self.queue.put((data, len(data)))

    def writable(self) -> memoryview:
        self._check()
        return memoryview(self.piece)[self.filled :]

    def wrote(self, count: int) -> None:
        self.filled += count
        if self.filled == HANDOFF_SIZE:
            self._hand_over()

    def _hand_over(self) -> None:
        self.queue.put((self.piece, self.filled))
        try:
            self.piece = self.spare.get_nowait()
        except queue.Empty:
            self.piece = bytearray(HANDOFF_SIZE)
        self.filled = 0

    def close(self) -> None:
        """Flush everything downstream and close it; raises what went wrong there."""
        self._check()
        if self.filled:
            self._hand_over()
        self.queue.put(None)
        self.thread.join()
        self._check()

    def stop(self) -> None:
        """Drop what is queued and wait for the thread to end; never raises."""
        if self.thread.is_alive():
            self.stopped = True
            self.filled = 0
            self.queue.put(None)
            self.thread.join()
        abort = getattr(self.downstream, "abort", None)
        if abort is not None:
            abort()  # e.g. the parallel gzip stage's thread pool


class Meter:
    """Counts and hashes (ARCHIVE_HASH: BLAKE3) the bytes that reach the destinations."""

    def __init__(self, downstream: Sink, on_bytes: Callable[[int], None]) -> None:
        self.downstream = downstream
        self.on_bytes = on_bytes
        self.digest = hash_for(ARCHIVE_HASH)
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.digest.update(data)
        self.size += len(data)
        self.downstream.write(data)
        self.on_bytes(len(data))

    def close(self) -> None:
        self.downstream.close()

    @property
    def archive_hash(self) -> tuple[str, str]:
        """(algorithm, hexadecimal digest) of every byte written so far."""
        return ARCHIVE_HASH, self.digest.hexdigest()


class FanOut:
    """Sends every byte to each destination writer still healthy.

    A destination that fails is dropped (its writer aborted, its error kept) and the
    others go on; when none is left the backup fails.
    """

    def __init__(self, writers: dict[int, ArtifactWriter]) -> None:
        self.writers = dict(writers)
        self.errors: dict[int, DestinationError] = {}
        self.dropped: dict[int, ArtifactWriter] = {}
        """Writers that failed and were aborted (`abort` tells again whether that worked)."""

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
        self.dropped[destination_id] = writer
        self.errors[destination_id] = error

    def close(self) -> None:
        return None

    def describe_errors(self) -> str:
        return "; ".join(str(error) for error in self.errors.values()) or "no destination"
