"""Compact JSON written a piece at a time (manifests), never whole in memory.

One `json.dumps` holds the document's pieces and then the joined string, and
`.encode()` the string and the bytes: twice the document on top of the data it
comes from. A manifest of 200,000 files is 42 MiB of JSON, and a run peaked at
233 MiB against 147 MiB just before it was encoded (docs/benchmarks.md, "Memory per
file"). `write_document` writes a document into a file (a run's spool) instead:
its `Streamed` values, the run's file list (pipeline/filelist.py) and an encrypted
manifest's sealed part (pipeline/encrypt.py), copy their JSON from their own spools,
and any other long list or text is encoded a piece at a time.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

ITEMS_PER_PIECE = 1024
"""List items encoded in one `json.dumps` call (a manifest's: about 200 KiB of JSON)."""
CHARACTERS_PER_PIECE = 1 << 18
"""Characters of a long text (a sealed manifest's armor) escaped in one call."""
COMPACT = (",", ":")
"""No indent: with one, json falls back to its pure-Python encoder (seconds for 20,000 files)."""


class Writable(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


@runtime_checkable
class Streamed(Protocol):
    """A document value that writes its own JSON (a spooled file list, a sealed part)."""

    def write_json(self, out: Writable) -> None: ...


def write_document(document: dict[str, Any], out: Writable) -> None:
    """`document` as compact JSON into `out`, byte for byte what
    `json.dumps(document, separators=(",", ":")).encode()` gives (were its `Streamed`
    values what they write), those values writing themselves and long lists and
    texts a piece at a time."""
    if not all(isinstance(key, str) for key in document):
        raise TypeError("a document's keys are strings")
    out.write(b"{")
    for index, (key, value) in enumerate(document.items()):
        if index:
            out.write(b",")
        out.write(json.dumps(key).encode() + b":")
        if isinstance(value, Streamed):
            value.write_json(out)
            continue
        size = _piece_size(value)
        if size is None:
            out.write(json.dumps(value, separators=COMPACT).encode())
            continue
        # Each piece is "[...]" or '"..."': the first keeps its opening, the last lends its
        # closing; list items are joined by commas, text runs on (escapes are per
        # character, so a piece never splits one).
        between = b"," if isinstance(value, list) else b""
        for start in range(0, len(value), size):
            piece = memoryview(json.dumps(value[start : start + size], separators=COMPACT).encode())
            if start:
                out.write(between)
                out.write(piece[1:-1])
            else:
                out.write(piece[:-1])
        out.write(piece[-1:])
    out.write(b"}")


def _piece_size(value: object) -> int | None:
    """How much of a long list or text goes in one piece; None for anything else."""
    if isinstance(value, list) and len(value) > ITEMS_PER_PIECE:
        return ITEMS_PER_PIECE
    if isinstance(value, str) and len(value) > CHARACTERS_PER_PIECE:
        return CHARACTERS_PER_PIECE
    return None
