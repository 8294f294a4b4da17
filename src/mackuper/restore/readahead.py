"""Read-ahead stages: each reads its source in a thread of its own, like the backup
pipeline's `BackgroundStage` in reverse.

A full restore is storage -> decryption -> decompression -> extraction; with a
`ReadAhead` between each, the download, the age decryption and the zstd
decompression (both release the GIL) can run on other cores while the calling
thread parses tar and writes files. At most `depth` pieces of 1 MiB wait between
two stages, so memory stays bounded. In the benchmark (bench/restore.py full,
docs/benchmarks.md) the pace of a restore of many small files is set by the
extraction thread, not by these stages.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Iterator
from typing import BinaryIO, Protocol, cast

PIECE = 1 << 20
DEPTH = 4
_POLL = 0.1


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ReadAhead(io.RawIOBase):
    """The bytes of `source`, read ahead by a thread; its errors are raised here."""

    def __init__(self, source: Readable, name: str, depth: int = DEPTH) -> None:
        super().__init__()
        self.source = source
        self.queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.pending = memoryview(b"")
        self.done = False
        self.thread = threading.Thread(target=self._run, name=f"restore-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                data = self.source.read(PIECE)
                self._put(data)
                if not data:
                    return
        except BaseException as error:  # noqa: BLE001 - raised again in the reading thread
            self._put(error)

    def _put(self, item: bytes | BaseException) -> None:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            if self.done:
                return 0
            try:
                item = self.queue.get(timeout=_POLL)
            except queue.Empty:
                if self.stopped.is_set():  # the chain is closing: nothing more will come
                    return 0
                continue
            if isinstance(item, BaseException):
                self.done = True
                raise item
            if not item:
                self.done = True
                return 0
            self.pending = memoryview(item)
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count

    def stop(self) -> None:
        """Ask the thread to end, and let it go if it waits to hand over a piece."""
        self.stopped.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self.queue.get_nowait()


@contextlib.contextmanager
def read_ahead_chain() -> Iterator[list[ReadAhead]]:
    """A list to add stages to; on exit every stage is stopped, then every thread joined."""
    stages: list[ReadAhead] = []
    try:
        yield stages
    finally:
        for stage in stages:
            stage.stop()
        for stage in stages:
            stage.thread.join()


def staged(source: Readable, name: str, chain: list[ReadAhead]) -> BinaryIO:
    """`source` read ahead in its own thread (added to `chain`), as a buffered stream."""
    stage = ReadAhead(source, name)
    chain.append(stage)
    return cast(BinaryIO, io.BufferedReader(stage, PIECE))
