"""Compact JSON for documents with a long list or a long text inside (manifests).

One `json.dumps` holds the document's pieces and then the joined string, and
`.encode()` the string and the bytes: twice the document on top of the data it
comes from. A manifest of 200,000 files is 42 MiB of JSON, and a run peaked at
233 MiB against 147 MiB just before it was encoded (docs/benchmarks.md, "Memory per
file"). Here long values are encoded a piece at a time into one growing buffer:
1.15-1.18x the document (tracemalloc).
"""

from __future__ import annotations

import json
from typing import Any

ITEMS_PER_PIECE = 1024
"""List items encoded in one `json.dumps` call (a manifest's: about 200 KiB of JSON)."""
CHARACTERS_PER_PIECE = 1 << 18
"""Characters of a long text (a sealed manifest's armor) escaped in one call."""
_COMPACT = (",", ":")
"""No indent: with one, json falls back to its pure-Python encoder (seconds for 20,000 files)."""


def json_document(document: dict[str, Any]) -> bytes | bytearray:
    """`json.dumps(document, separators=(",", ":")).encode()`, byte for byte, with long
    lists and texts among its values encoded a piece at a time."""
    if not any(_piece_size(value) for value in document.values()) or not all(
        isinstance(key, str) for key in document
    ):
        return json.dumps(document, separators=_COMPACT).encode()
    out = bytearray(b"{")
    for index, (key, value) in enumerate(document.items()):
        if index:
            out += b","
        out += json.dumps(key).encode() + b":"
        size = _piece_size(value)
        if size is None:
            out += json.dumps(value, separators=_COMPACT).encode()
            continue
        # Each piece is "[...]" or '"..."': the first keeps its opening, the last lends its
        # closing; list items are joined by commas, text runs on (escapes are per
        # character, so a piece never splits one).
        between = b"," if isinstance(value, list) else b""
        for start in range(0, len(value), size):
            piece = memoryview(
                json.dumps(value[start : start + size], separators=_COMPACT).encode()
            )
            if start:
                out += between
                out += piece[1:-1]
            else:
                out += piece[:-1]
        out += piece[-1:]
    out += b"}"
    return out


def _piece_size(value: object) -> int | None:
    """How much of a long list or text goes in one piece; None for anything else."""
    if isinstance(value, list) and len(value) > ITEMS_PER_PIECE:
        return ITEMS_PER_PIECE
    if isinstance(value, str) and len(value) > CHARACTERS_PER_PIECE:
        return CHARACTERS_PER_PIECE
    return None
