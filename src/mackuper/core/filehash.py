"""The hash of each file's bytes in a manifest: BLAKE3 now, SHA-256 in older manifests.

A manifest entry names its hash by its key: `"blake3"` in entries written since
2026-12-02, `"sha256"` in entries written before. Both stay readable for good: an
incremental point carries the entries of the files it did not read again from the
point before it, so one chain's folded list can hold both kinds, and every check
(a deep verification, the anomaly fingerprint) takes each entry's own algorithm.

Why BLAKE3: a backup hashes its bytes twice, once per file for the manifest and once
for the whole archive, and the two hashes were most of the CPU a backup spends beyond
reading and writing (docs/benchmarks.md, issue 23). BLAKE3 is a cryptographic hash
like SHA-256 and runs 3.5-4x faster on one core (7.2-7.9 GB/s against SHA-256's
1.95-2.05 GB/s with SHA instructions, on the 2026-12-02 AMD host); a `tar.zst` run
through the service took 15% less time and CPU with it (docs/benchmarks.md, "File
hashes: BLAKE3").

`b3sum` (Debian's package of that name) checks a restored file against its entry as
`sha256sum` would. The archive's own hash stays SHA-256: it is the one people compare
with `sha256sum` against the manifest and the catalog.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import blake3

FILE_HASH = "blake3"
"""The key (and the algorithm) of a file's hash in the entries this version writes."""
OLDER_FILE_HASH = "sha256"
"""The key of a file's hash in entries written before BLAKE3: still read everywhere."""


class Hash(Protocol):
    """What a writer and a checker need of a hash object (hashlib's and blake3's)."""

    def update(self, data: bytes | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


_MAKERS: dict[str, Callable[[], Hash]] = {
    FILE_HASH: blake3.blake3,
    OLDER_FILE_HASH: hashlib.sha256,
}
FILE_HASHES = tuple(_MAKERS)
"""Every key a file's hash may have, the current one first."""


def new_file_hash() -> Hash:
    """A hash for one file's bytes, of the algorithm FILE_HASH names."""
    return _MAKERS[FILE_HASH]()


def hash_for(algorithm: str) -> Hash:
    """A fresh hash of `algorithm` (one of FILE_HASHES); ValueError for anything else."""
    make = _MAKERS.get(algorithm)
    if make is None:
        raise ValueError(f"unknown file hash {algorithm!r}")
    return make()


def file_hash(entry: Mapping[str, Any]) -> tuple[str, str] | None:
    """The entry's hash as (algorithm, hexadecimal digest), or None when it has none
    (not a file, or a file listed without one)."""
    for algorithm in FILE_HASHES:
        value = entry.get(algorithm)
        if isinstance(value, str) and value:
            return algorithm, value
    return None
