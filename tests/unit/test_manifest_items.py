"""A manifest item per written entry: what it says, and what it costs in memory."""

from __future__ import annotations

from mackuper.pipeline.run import _manifest_entry
from mackuper.sources.base import Entry, EntryType


def test_items_say_the_mode_in_octal_and_share_its_text() -> None:
    first, second, other = (
        _manifest_entry(Entry(name, EntryType.FILE, 1, mode, 1_700_000_000.5))
        for name, mode in (("a", 0o644), ("b", 0o644), ("c", 0o4755))
    )
    assert (first["mode"], second["mode"], other["mode"]) == ("0644", "0644", "4755")
    # One string for every file with that mode: a new one each cost 53 bytes a file,
    # about a tenth of a manifest item (200,000 files: 13 MiB of a 246 MiB peak).
    assert first["mode"] is second["mode"]
    assert first == {
        "path": "a",
        "type": "file",
        "size": 1,
        "mode": "0644",
        "mtime": 1_700_000_000.5,
        "blake3": None,
    }
