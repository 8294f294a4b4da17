"""Stages of the pipeline, fed with in-memory bytes."""

from __future__ import annotations

import gzip
import os
import subprocess
import time
import tracemalloc

import pytest
import zstandard

from mackuper.pipeline import streams
from mackuper.pipeline.seekable import FRAME_SIZE, SeekableZstdStage
from mackuper.pipeline.streams import (
    GZIP_BLOCK,
    HANDOFF_DEPTH,
    HANDOFF_SIZE,
    BackgroundStage,
    ParallelGzipStage,
    compress_stage,
)


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes | memoryview) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True


class Exploding(Collect):
    def write(self, data: bytes | memoryview) -> None:
        raise OSError("disk on fire")


@pytest.mark.parametrize(
    "size", [0, 1, GZIP_BLOCK - 1, GZIP_BLOCK, 3 * GZIP_BLOCK + 12345], ids=str
)
def test_parallel_gzip_is_one_gzip_member_that_gunzip_reads(size: int) -> None:
    text = (b"the quick brown fox jumps over the lazy dog %d\n" * (size // 40 + 1))[: size // 2]
    payload = text + os.urandom(size - len(text))
    sink = Collect()
    stage = ParallelGzipStage(sink, level=6, threads=3)
    for start in range(0, len(payload), 300_000):
        stage.write(payload[start : start + 300_000])
    stage.close()
    assert sink.closed
    assert gzip.decompress(bytes(sink.data)) == payload
    gunzip = subprocess.run(["gzip", "-dc"], input=bytes(sink.data), capture_output=True)
    assert gunzip.returncode == 0 and gunzip.stdout == payload


def test_background_stage_delivers_in_order_and_closes_downstream() -> None:
    sink = Collect()
    stage = BackgroundStage(sink)
    pieces = [os.urandom(n) for n in (10, 700_000, 2_000_000, 3)]
    for piece in pieces:
        stage.write(piece)
    stage.close()
    assert sink.data == b"".join(pieces) and sink.closed


def test_background_stage_raises_the_downstream_error_in_the_writer() -> None:
    stage = BackgroundStage(Exploding())
    with pytest.raises(OSError, match="disk on fire"):
        for _ in range(20):
            stage.write(bytes(1 << 20))
        stage.close()
    stage.stop()


class SlowCollect(Collect):
    """Copies what it gets (as every stage must) and notes which buffers it was lent."""

    def __init__(self) -> None:
        super().__init__()
        self.buffers: dict[int, object] = {}  # kept alive, so ids are never recycled

    def write(self, data: bytes | memoryview) -> None:
        if isinstance(data, memoryview):
            self.buffers[id(data.obj)] = data.obj
        super().write(data)
        time.sleep(0.0005)  # slower than the writer, so the queue fills and pieces come back


def test_background_stage_reuses_a_handful_of_pieces_and_keeps_every_byte() -> None:
    sink = SlowCollect()
    stage = BackgroundStage(sink)
    payload = os.urandom(40 * HANDOFF_SIZE + 12_345)
    view = memoryview(payload)
    offset, step = 0, 1
    while offset < len(payload):  # writes of every size, from 1 byte to over a piece
        stage.write(view[offset : offset + step])
        offset += step
        step = step * 5 % (3 * HANDOFF_SIZE) + 1
    stage.close()

    assert sink.data == payload and sink.closed
    assert len(sink.buffers) <= HANDOFF_DEPTH + 2  # not one new piece per MiB


@pytest.mark.parametrize("disk_bound", [True, False])
def test_zstd_stage_writes_frames_the_zstd_tool_reads_as_one_stream_with_or_without_workers(
    monkeypatch: pytest.MonkeyPatch, disk_bound: bool
) -> None:
    monkeypatch.setattr(streams, "compressor_threads", lambda: 2)
    text = b"the quick brown fox jumps over the lazy dog\n" * 100_000
    payload = text + os.urandom(2 * FRAME_SIZE)  # several independent frames
    sink = Collect()
    stage = compress_stage("tar.zst", None, sink, disk_bound=disk_bound)
    assert isinstance(stage, SeekableZstdStage)
    assert stage.threads == (2 if disk_bound else 0)  # uploads keep one thread's memory
    for start in range(0, len(payload), 300_000):
        stage.write(payload[start : start + 300_000])
    stage.close()
    unzstd = subprocess.run(["zstd", "-dc"], input=bytes(sink.data), capture_output=True)
    assert unzstd.returncode == 0 and unzstd.stdout == payload
    frames = stage.index()["frames"]
    assert isinstance(frames, list) and len(frames) == -(-len(payload) // FRAME_SIZE)
    offset = 0
    for number, size in enumerate(frames):  # each frame opens on its own
        frame = zstandard.ZstdDecompressor().decompress(bytes(sink.data[offset : offset + size]))
        assert frame == payload[number * FRAME_SIZE : (number + 1) * FRAME_SIZE]
        offset += size


def test_parallel_gzip_stores_incompressible_blocks_without_zlib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 23: zlib -6 spends ~20 times ISA-L's CPU on data that does not compress
    # for the same bytes out; text still goes to zlib (ISA-L's best is ~20% larger).
    text = b"".join(b"%05d backup archive stream bucket upload\n" % n for n in range(80_000))
    payload = text[: 2 * GZIP_BLOCK] + os.urandom(3 * GZIP_BLOCK) + text[: GZIP_BLOCK // 2]
    zlib_blocks: list[int] = []
    real = streams.zlib.compressobj

    def counting(*args: object) -> object:
        zlib_blocks.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(streams.zlib, "compressobj", counting)
    sink = Collect()
    stage = ParallelGzipStage(sink, level=6, threads=2)
    for start in range(0, len(payload), 300_000):
        stage.write(payload[start : start + 300_000])
    stage.close()

    gunzip = subprocess.run(["gzip", "-dc"], input=bytes(sink.data), capture_output=True)
    assert gunzip.returncode == 0 and gunzip.stdout == payload
    assert len(zlib_blocks) == 3  # the two text blocks and the text tail; none of the random
    plain_gzip = gzip.compress(payload, 6)
    assert len(sink.data) <= 1.005 * len(plain_gzip)


def test_zstd_stage_keeps_at_most_threads_plus_one_frames() -> None:
    # Memory (issue 23): each frame's tar bytes wait in one of a few reused buffers,
    # not in a fresh copy per frame with two frames per thread queued. Traced here:
    # three frame buffers, plus each running compression's output buffer of
    # compressBound (a frame's size, mostly never touched, so not resident); before,
    # two more frames and a copy of each (~34 MB traced against ~26 MB now).
    text = b"".join(b"%05d backup archive stream bucket upload\n" % n for n in range(100_000))
    payload = text * 10  # ten frames that compress well: the input buffers dominate
    sink = Collect()
    tracemalloc.start()
    try:
        stage = SeekableZstdStage(sink, 3, threads=2)
        view = memoryview(payload)
        for start in range(0, len(payload), 1 << 20):
            stage.write(view[start : start + (1 << 20)])
        stage.close()
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    unzstd = subprocess.run(["zstd", "-dc"], input=bytes(sink.data), capture_output=True)
    assert unzstd.returncode == 0 and unzstd.stdout == payload
    assert peak < 7 * FRAME_SIZE
