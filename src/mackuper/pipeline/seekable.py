"""Seekable tar.zst: the compressed stream as independent zstd frames.

The tar stream is cut every `FRAME_SIZE` bytes and each piece compressed as a
frame of its own, so any frame decompresses without the ones before it. Frame
`k` holds tar bytes `k * FRAME_SIZE` onwards, so the index is just each frame's
compressed size: it goes to the manifest (`index`), and also to the end of the
archive as the zstd seekable format's seek table (a skippable frame), which
`zstd -d`, `tar -I zstd` and every zstd decoder pass over. The result is one
ordinary `.tar.zst` file.

With `threads`, frames are compressed on a small pool (zstd releases the GIL),
at most `threads + 1` in flight; without, in the calling stage thread. The tar bytes
of a frame are gathered in one of a few reused `frame_size` buffers and compressed
from it in place: no copy of each frame, no 4 MiB allocation per frame (the worker's
memory, issue 23: at two threads, three frames of tar bytes instead of up to six plus
a copy of each; docs/benchmarks.md).

Frame size, measured on the 1 GiB bench corpus at level 3 (`bench.restore
frames`, docs/benchmarks.md): independent frames cost compression ratio because
each starts with an empty window: +3.2% at 1 MiB, +2.0% at 2 MiB, +0.87% at
4 MiB, +0.35% at 8 MiB. A ranged restore of one file reads about one frame more
than the file. FRAME_SIZE is the smallest size that keeps the cost under 1%.
"""

from __future__ import annotations

import struct
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import zstandard

FRAME_SIZE = 4 << 20
INDEX_SCHEME = "zstd-frames/1"
PLAIN_TAR_SCHEME = "tar/1"
"""The index of a plain tar: an entry's offset is its place in the stored object."""
SKIPPABLE_MAGIC = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1


class Sink(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...

    def close(self) -> None: ...


def seek_table(frames: list[tuple[int, int]]) -> bytes:
    """The zstd seekable format's seek table for (compressed, plain) frame sizes."""
    entries = b"".join(struct.pack("<II", compressed, plain) for compressed, plain in frames)
    footer = struct.pack("<IBI", len(frames), 0, SEEKABLE_MAGIC)
    body = entries + footer
    return struct.pack("<II", SKIPPABLE_MAGIC, len(body)) + body


class SeekableZstdStage:
    """Compresses into independent frames of FRAME_SIZE tar bytes; see the module."""

    def __init__(
        self, downstream: Sink, level: int, threads: int = 0, frame_size: int = FRAME_SIZE
    ) -> None:
        self.downstream = downstream
        self.frame_size = frame_size
        self.level = level
        self.local = threading.local()
        self.threads = threads
        self.pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="zstd") if threads else None
        )
        self.pending: deque[tuple[Future[bytes], bytearray, int]] = deque()
        self.spare: list[bytearray] = []
        self.buffer = bytearray(frame_size)
        self.filled = 0
        self.frames: list[tuple[int, int]] = []
        """(compressed, plain) size of each frame written so far."""

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            step = min(self.frame_size - self.filled, len(view))
            self.buffer[self.filled : self.filled + step] = view[:step]
            self.filled += step
            view = view[step:]
            if self.filled == self.frame_size:
                self._submit()

    def writable(self) -> memoryview:
        """The rest of the frame being gathered: the tar writer reads files into it."""
        return memoryview(self.buffer)[self.filled :]

    def wrote(self, count: int) -> None:
        self.filled += count
        if self.filled == self.frame_size:
            self._submit()

    def _submit(self) -> None:
        block, plain = self.buffer, self.filled
        if self.pool is None:
            self._emit(self._compress(block, plain), plain)
            self.filled = 0
            return
        self.pending.append((self.pool.submit(self._compress, block, plain), block, plain))
        while len(self.pending) > self.threads:
            self._emit_oldest()  # frees a buffer: at most threads + 1 frames exist
        self.buffer = self.spare.pop() if self.spare else bytearray(self.frame_size)
        self.filled = 0

    def _compress(self, block: bytearray, plain: int) -> bytes:
        # A compressor is not thread safe: each thread keeps its own.
        compressor: zstandard.ZstdCompressor | None = getattr(self.local, "compressor", None)
        if compressor is None:
            compressor = self.local.compressor = self._new_compressor()
        return compressor.compress(memoryview(block)[:plain])

    def _new_compressor(self) -> zstandard.ZstdCompressor:
        return zstandard.ZstdCompressor(level=self.level, write_checksum=True)

    def _emit_oldest(self) -> None:
        future, block, plain = self.pending.popleft()
        frame = future.result()
        self.spare.append(block)
        self._emit(frame, plain)

    def _emit(self, frame: bytes, plain: int) -> None:
        self.frames.append((len(frame), plain))
        give = getattr(self.downstream, "give", None)  # a stage thread takes it uncopied
        if give is not None:
            give(frame)
        else:
            self.downstream.write(frame)

    def close(self) -> None:
        try:
            if self.filled or not self.frames:
                self._submit()
            while self.pending:
                self._emit_oldest()
        finally:
            self.abort()
        self.downstream.write(seek_table(self.frames))
        self.downstream.close()

    def abort(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def index(self) -> dict[str, object]:
        """The manifest's `index`: frame size and each frame's compressed size."""
        return {
            "scheme": INDEX_SCHEME,
            "frame_size": self.frame_size,
            "frames": [compressed for compressed, _plain in self.frames],
        }
