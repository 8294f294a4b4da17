"""A run's manifest entries, encoded as they come and kept in a spool, not in memory.

A manifest entry held as a Python dict costs about 550 bytes (a 7-key dict 272, the
hex file hash 113, the path ~100, ...): a run of a million files held 0.8 GiB for its
file list alone, and more while encoding it (docs/benchmarks.md, "Memory per file").
Here entries wait in a list of at most ITEMS_PER_BATCH, are then encoded with one
`json.dumps` (the C encoder: what encoding the whole list at the end cost, spread
over the run) and appended to a `Spool`. A run's peak then no longer grows with its
file count.

The spool holds the entries' JSON separated by commas, so the manifest's `files`
array is the spool copied between brackets (`write_json`), byte for byte what
`json.dumps(list(entries), separators=(",", ":"))` gives. Reading the entries back
(`iter`) decodes one batch at a time: the anomaly fingerprint and the chain state
are built in one pass over them.

An entry is final when appended: changes made to the dict afterwards may be lost.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from mackuper.pipeline.document import COMPACT, Writable
from mackuper.pipeline.errors import PipelineError

ITEMS_PER_BATCH = 1024
"""Entries encoded by one `json.dumps` call (about 200 KiB of JSON for a manifest)."""
IN_MEMORY = 8 << 20
"""Bytes a spool keeps in memory before it moves to a temporary file."""
COPY_PIECE = 1 << 20


class Spool:
    """Bytes appended in memory up to IN_MEMORY (most jobs' manifests, every test-sized
    one), then in an unlinked temporary file (`tempfile`'s directory, mode 0600, gone
    when closed or when the process dies). Not `SpooledTemporaryFile`: that warns when
    collected unclosed even while it holds no file, and is a file object to seek
    around in where appending and reading ranges is all that is needed."""

    def __init__(self) -> None:
        self._memory = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        self.check_open()
        try:
            if self._file is None and self.size + len(data) > IN_MEMORY:
                self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
                self._file.write(self._memory)
                self._memory = bytearray()
            if self._file is not None:
                self._file.seek(self.size)
                self._file.write(data)
                self._file.flush()  # a full disk says so now, not at a later read
        except OSError as error:
            raise PipelineError(
                f"the run's file list could not be kept in a temporary file in"
                f" {tempfile.gettempdir()}: {error.strerror or error} (TMPDIR chooses"
                " where; it needs about 250 bytes a file)"
            ) from None
        if self._file is None:
            self._memory += data
        self.size += len(data)

    def read(self, start: int, end: int) -> bytes:
        self.check_open()
        if self._file is None:
            return bytes(self._memory[start:end])
        self._file.seek(start)
        return self._file.read(end - start)

    def pieces(self) -> Iterator[bytes]:
        """Everything written, COPY_PIECE bytes at a time."""
        for start in range(0, self.size, COPY_PIECE):
            yield self.read(start, min(start + COPY_PIECE, self.size))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._memory = bytearray()
        self.closed = True

    def check_open(self) -> None:
        if self.closed:
            raise ValueError("the spool is closed")


class FileList:
    """The ordered manifest entries of one run; close it (or use `with`) when done."""

    def __init__(self, items: Iterable[dict[str, Any]] = ()) -> None:
        self._spool = Spool()
        self._pending: list[dict[str, Any]] = []
        self._batches: list[tuple[int, int]] = []
        """(start, end) of each encoded batch in the spool, without its leading comma."""
        self._count = 0
        self.extend(items)

    def append(self, item: dict[str, Any]) -> None:
        self._spool.check_open()
        self._pending.append(item)
        self._count += 1
        if len(self._pending) >= ITEMS_PER_BATCH:
            self.flush()

    def extend(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            self.append(item)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The entries in order, decoded a batch at a time (each call starts afresh);
        ValueError once closed."""
        self._spool.check_open()
        self.flush()
        for start, end in list(self._batches):
            yield from json.loads(b"[" + self._spool.read(start, end) + b"]")

    def write_json(self, out: Writable) -> None:
        """The entries as one compact JSON array, copied from the spool."""
        self.flush()
        out.write(b"[")
        for piece in self._spool.pieces():
            out.write(piece)
        out.write(b"]")

    def close(self) -> None:
        self._spool.close()
        self._pending = []

    def __enter__(self) -> FileList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self) -> None:
        """Encode what waits into the spool (a run does before it commits: a temporary
        directory that cannot take it fails the run while nothing is published)."""
        if not self._pending:
            return
        encoded = memoryview(json.dumps(self._pending, separators=COMPACT).encode())
        self._pending = []
        if self._batches:
            self._spool.write(b",")
        start = self._spool.size
        self._spool.write(encoded[1:-1])  # the entries without the list's brackets
        self._batches.append((start, self._spool.size))
