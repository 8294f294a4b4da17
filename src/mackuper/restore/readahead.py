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
import sys
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, cast

if TYPE_CHECKING:
    from mackuper.restore.formats import Member, Opener

PIECE = 1 << 20
DEPTH = 4
_POLL = 0.1
SMALL_MEMBER = PIECE
"""A member at most this large is read whole by the member stage; larger ones in pieces."""
BATCH_MEMBERS = 256
"""Members handed over together at most (or PIECE bytes of their data)."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Stage:
    """A thread that hands items over through a bounded queue, and can be stopped."""

    def __init__(self, name: str, depth: int) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"restore-{name}", daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def _put(self, item: object) -> None:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        """Ask the thread to end, and let it go if it waits to hand over an item."""
        self.stopped.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self.queue.get_nowait()


class ReadAhead(_Stage, io.RawIOBase):
    """The bytes of `source`, read ahead by a thread; its errors are raised here."""

    def __init__(self, source: Readable, name: str, depth: int = DEPTH) -> None:
        io.RawIOBase.__init__(self)
        _Stage.__init__(self, name, depth)
        self.source = source
        self.pending = memoryview(b"")
        self.done = False
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


SWITCH_INTERVAL = 0.0005
"""The interpreter's thread switch interval while stages run (Python's default: 5 ms).

A thread that gives up the GIL for C work or a system call (zstd decompression, each
`open`/`write`/`rename` of the extraction) waits up to the switch interval to get it
back while another thread runs Python code (the tar parsing). Decompressing 201 MiB
took 0.017 s alone and 1.1 s beside a busy Python thread at 5 ms, 0.06 s at 0.5 ms;
a full restore of the bench corpus took 0.95x the wall time of the code before
(paired runs, docs/benchmarks.md)."""

_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


@contextlib.contextmanager
def short_switch_interval() -> Iterator[None]:
    """Lower the switch interval to SWITCH_INTERVAL while any chain runs, then restore it."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_saved, SWITCH_INTERVAL))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


@contextlib.contextmanager
def read_ahead_chain() -> Iterator[list[_Stage]]:
    """A list to add stages to; on exit every stage is stopped, then every thread joined.

    Meanwhile the interpreter switches threads more often (`short_switch_interval`)."""
    stages: list[_Stage] = []
    with short_switch_interval():
        try:
            yield stages
        finally:
            for stage in stages:
                stage.stop()
            for stage in stages:
                stage.thread.join()


def staged(source: Readable, name: str, chain: list[_Stage]) -> BinaryIO:
    """`source` read ahead in its own thread (added to `chain`), as a buffered stream."""
    stage = ReadAhead(source, name)
    chain.append(stage)
    return cast(BinaryIO, io.BufferedReader(stage, PIECE))


_END = object()
"""Handed over after the last piece of a large member, and after the last member."""


class MembersAhead(_Stage):
    """Archive members parsed, and their bytes read, by a thread of their own.

    The thread walks the archive (tar headers, in `tarfile`) and reads each file's
    bytes: a small file whole, handed over with others in a batch, a large one in
    pieces of PIECE bytes. The calling thread gets the same (member, opener) pairs
    as from the archive, so it spends its time writing files: their system calls
    then overlap the parsing of the next members. As with the archive's own
    openers, one is valid only until the next member; a large member's pieces
    that were not read are skipped then.
    """

    def __init__(self, members: Iterator[tuple[Member, Opener | None]], depth: int = DEPTH) -> None:
        super().__init__("members", depth)
        self.members = members
        self.thread.start()

    def _run(self) -> None:
        try:
            self._read_members()
        except BaseException as error:  # noqa: BLE001 - raised again in the reading thread
            self._put(error)
        finally:
            close = getattr(self.members, "close", None)
            if close is not None:
                close()

    def _read_members(self) -> None:
        batch: list[tuple[Member, bytes | None]] = []
        size = 0
        for member, opener in self.members:
            if self.stopped.is_set():
                return
            if opener is None or member.size <= SMALL_MEMBER:
                data = None
                if opener is not None:
                    with opener() as handle:
                        data = handle.read()
                    size += len(data)
                batch.append((member, data))
                if len(batch) >= BATCH_MEMBERS or size >= PIECE:
                    self._put(batch)
                    batch, size = [], 0
                continue
            if batch:
                self._put(batch)
                batch, size = [], 0
            self._put(member)
            with opener() as handle:
                while (piece := handle.read(PIECE)) and not self.stopped.is_set():
                    self._put(piece)
            self._put(_END)
        if batch:
            self._put(batch)
        self._put(_END)

    def take(self) -> Any:
        while True:
            try:
                item = self.queue.get(timeout=_POLL)
            except queue.Empty:
                if self.stopped.is_set():
                    raise RuntimeError("the restore stages were stopped") from None
                continue
            if isinstance(item, BaseException):
                raise item
            return item

    def __iter__(self) -> Iterator[tuple[Member, Opener | None]]:
        while (item := self.take()) is not _END:
            if isinstance(item, list):
                for member, data in item:
                    yield member, None if data is None else _bytes_opener(data)
                continue
            pieces = _Pieces(self)
            yield item, pieces.open
            pieces.skip()


def _bytes_opener(data: bytes) -> Opener:
    return lambda: io.BytesIO(data)


class _Pieces(io.RawIOBase):
    """A large member's bytes, as the member stage hands them over (pieces are
    returned as they came, not copied, when the caller asks for as much or more)."""

    def __init__(self, stage: MembersAhead) -> None:
        super().__init__()
        self.stage = stage
        self.pending = b""
        self.done = False
        self.opened = False

    def open(self) -> IO[bytes]:
        if self.opened:
            raise RuntimeError("a member of a streamed archive can be read once")
        self.opened = True
        return cast(IO[bytes], self)

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        while not self.pending and not self.done:
            item = self.stage.take()
            if item is _END:
                self.done = True
            else:
                self.pending = item
        return bool(self.pending)

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(PIECE), b""))
        if not size or not self._fill():
            return b""
        if size >= len(self.pending):
            piece, self.pending = self.pending, b""
            return piece
        piece, self.pending = self.pending[:size], self.pending[size:]
        return piece

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        piece = self.read(len(buffer))
        buffer[: len(piece)] = piece
        return len(piece)

    def skip(self) -> None:
        self.pending = b""
        while not self.done:
            if self.stage.take() is _END:
                self.done = True


def members_ahead(
    members: Iterator[tuple[Member, Opener | None]], chain: list[_Stage]
) -> Iterator[tuple[Member, Opener | None]]:
    """`members` parsed and read ahead in a thread of their own (added to `chain`)."""
    stage = MembersAhead(members)
    chain.append(stage)
    return iter(stage)
