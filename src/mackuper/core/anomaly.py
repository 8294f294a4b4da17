"""Does a backup look like the source was encrypted or wiped? Compared with the job's
recent backups, before retention is allowed to delete any of them.

Each backup keeps a small fingerprint of its manifest: its file count, bytes read and
written, and two bottom-k sketches (the k smallest 52-bit hashes) of its paths and of
its (path, content hash) pairs. Two sketches estimate the Jaccard similarity of two
manifests within about ±0.03 whatever their size, so "how many files are gone" and
"how many of the files still there changed" cost 2 x 256 numbers per backup, not a
second copy of every manifest. Ransomware rewrites most files (and often renames
them), and what it writes no longer compresses; an ordinary day changes a few.

An incremental point (issue 17) reads and stores only what changed, but its manifest
lists every file present at the point: the files it keeps from earlier archives of
its chain count towards its size (`bytes_held`), so a quiet day's small increment is
not a "size dropped", while a wiped source still is.

A content value is of the entry's own hash (core/filehash.py): BLAKE3, or SHA-256 in
entries written before it. A full hashes every file again, so a file the previous
backup listed with SHA-256 gives another value for the same bytes: the first full after
the switch leaves those files (`older_files` of the previous fingerprint) out of "how
many changed", and skips the question when fewer than COMPARABLE_SHARE of the files are
left to compare. An incremental point keeps the entries of the files it did not read as
they were, so its values still match the previous backup's, and a file it read again
(its metadata changed) counts as changed if its value differs, whichever algorithm the
two hold: until a chain's first full after the switch, a point that reads many unchanged
files again (after a `chmod -R`) is reported as "files changed", where before the switch
the same bytes gave the same hash. That errs on the side a backup tool should.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from mackuper.core.filehash import OLDER_FILE_HASH, named_hash

SKETCH_SIZE = 256
MIN_FILES = 20
"""Fewer files than this say too little to judge by shares of files."""
GONE_SHARE = 0.3
CHANGED_SHARE = 0.5
COMPARABLE_SHARE = 0.25
"""Contents are compared only when at least this share of the common files can be (a
full after the switch to BLAKE3 cannot compare the files listed before with SHA-256)."""
MIN_BYTES_FOR_RATIO = 1 << 20
RATIO_FLOOR = 0.9
"""Written / read at or above this: the data barely compresses (encrypted, or random)."""
RATIO_JUMP = 1.5
SHRINK_SHARE = 0.5
HISTORY = 5


def _size(entry: Mapping[str, Any]) -> int:
    size = entry.get("size")
    return size if isinstance(size, int) and size > 0 else 0


def _hash(text: str) -> int:
    # A path that is not UTF-8 on disk comes with surrogates in it (os.fsdecode).
    data = text.encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest()) >> 12


class _Bottom:
    """The SKETCH_SIZE smallest distinct values seen, kept as they pass: a manifest of a
    million files is read once, a batch at a time, and never held (pipeline/filelist.py)."""

    def __init__(self) -> None:
        self._heap: list[int] = []  # negated: the largest kept value is on top
        self._kept: set[int] = set()

    def add(self, value: int) -> None:
        if value in self._kept:
            return
        if len(self._heap) < SKETCH_SIZE:
            heapq.heappush(self._heap, -value)
        elif value < -self._heap[0]:
            self._kept.discard(-heapq.heapreplace(self._heap, -value))
        else:
            return
        self._kept.add(value)

    def values(self) -> tuple[int, ...]:
        return tuple(sorted(self._kept))


@dataclass(frozen=True)
class Fingerprint:
    files: int
    bytes_read: int
    bytes_written: int
    paths: tuple[int, ...]
    contents: tuple[int, ...]
    bytes_held: int = 0
    """Bytes of the files an incremental point keeps from earlier archives of its chain."""
    older_files: int = 0
    """Files listed with a SHA-256 (core/filehash.py's OLDER_FILE_HASH), not BLAKE3."""
    point: bool = False
    """An incremental point (level > 0 of a chain), not a full."""

    @classmethod
    def of(
        cls,
        entries: Iterable[Mapping[str, Any]],
        bytes_read: int,
        bytes_written: int,
        point: bool = False,
    ) -> Fingerprint:
        """From the manifest's entries (path, type, size, a file's hash; in an incremental
        point, `archive` on those an earlier archive holds), in one pass. `point`: the
        backup is an incremental point, not a full."""
        files = held = older = 0
        paths, contents = _Bottom(), _Bottom()
        for entry in entries:
            if entry.get("type") != "file":
                continue
            files += 1
            if entry.get("archive"):
                held += _size(entry)
            paths.add(_hash(str(entry["path"])))
            hashed = named_hash(entry)
            if hashed is not None and hashed[0] == OLDER_FILE_HASH:
                older += 1
            content = hashed[1] if hashed is not None else entry.get("size")
            contents.add(_hash(f"{entry['path']}\0{content}"))
        return cls(
            files=files,
            bytes_read=bytes_read,
            bytes_written=bytes_written,
            bytes_held=held,
            paths=paths.values(),
            contents=contents.values(),
            older_files=older,
            point=point,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "paths": list(self.paths),
            "contents": list(self.contents),
            "bytes_held": self.bytes_held,
            "older_files": self.older_files,
            "point": self.point,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fingerprint | None:
        try:
            return cls(
                files=int(data["files"]),
                bytes_read=int(data["bytes_read"]),
                bytes_written=int(data["bytes_written"]),
                paths=tuple(int(value) for value in data["paths"]),
                contents=tuple(int(value) for value in data["contents"]),
                bytes_held=int(data.get("bytes_held") or 0),
                # Stored before BLAKE3: every file listed was of SHA-256 (or had no hash,
                # which compares by size either way).
                older_files=int(data.get("older_files", data["files"])),
                point=data.get("point") is True,
            )
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def size(self) -> int:
        """The bytes of the files at this point: read now, or kept from earlier archives."""
        return self.bytes_read + self.bytes_held

    @property
    def ratio(self) -> float | None:
        if self.bytes_read < MIN_BYTES_FOR_RATIO:
            return None
        return self.bytes_written / self.bytes_read


def similarity(first: Sequence[int], second: Sequence[int]) -> float:
    """Estimated Jaccard similarity of the two sets the sketches were taken of."""
    if not first and not second:
        return 1.0
    union = heapq.nsmallest(SKETCH_SIZE, set(first) | set(second))
    both = set(first) & set(second)
    return sum(1 for value in union if value in both) / len(union)


def _common(similar: float, first: int, second: int) -> float:
    """How many elements two sets of these sizes share, at this Jaccard similarity."""
    return similar * (first + second) / (1 + similar)


def findings(current: Fingerprint, history: Sequence[Fingerprint]) -> list[str]:
    """What looks wrong with `current` against the job's backups before it (newest
    first); empty when nothing does, or when there is no history yet."""
    if not history:
        return []
    said: list[str] = []
    previous = history[0]
    if previous.files >= MIN_FILES:
        common_paths = min(
            previous.files,
            _common(similarity(previous.paths, current.paths), previous.files, current.files),
        )
        gone = previous.files - common_paths
        if gone / previous.files >= GONE_SHARE:
            said.append(
                f"files gone: about {gone / previous.files:.0%} of the {previous.files} files"
                " of the previous backup are missing or renamed"
            )
        common_contents = _common(
            similarity(previous.contents, current.contents), previous.files, current.files
        )
        comparable = common_paths
        if not current.point:  # every file hashed again: a SHA-256 cannot match a BLAKE3
            comparable -= min(previous.older_files, current.files - current.older_files)
        # The sketches estimate shares of the whole manifest (about ±0.03): a few hundred
        # comparable files out of many thousand are within their noise, and 2-70% of
        # quiet fulls after a mostly-SHA-256 point read as "half changed".
        if comparable >= max(MIN_FILES, COMPARABLE_SHARE * common_paths):
            changed = max(0.0, comparable - common_contents) / comparable
            if changed >= CHANGED_SHARE:
                said.append(
                    f"files changed: about {changed:.0%} of the files kept since the previous"
                    " backup have different contents"
                )
    ratios = [ratio for item in history[:HISTORY] if (ratio := item.ratio) is not None]
    if current.ratio is not None and ratios:
        usual = median(ratios)
        if current.ratio >= RATIO_FLOOR and current.ratio >= usual * RATIO_JUMP:
            said.append(
                f"compression ratio jumped: the archive is {current.ratio:.0%} of the data"
                f" read, usually {usual:.0%} (encrypted data does not compress)"
            )
    sizes = [item.size for item in history[:HISTORY]]
    usual_size = median(sizes)
    if usual_size >= MIN_BYTES_FOR_RATIO and current.size < usual_size * SHRINK_SHARE:
        said.append(f"size dropped: {current.size:,} bytes backed up, usually {int(usual_size):,}")
    return said
