"""The hashes in a manifest, of each file's bytes and of the whole archive: BLAKE3 now,
SHA-256 in older manifests.

A hash is named by its key: `"blake3"` in what was written since 2026-12-02 (file
entries since then; the archive's own hash, in the manifest's `archive` section, the
runs' and artifacts' columns and the API, since the second switch the same day),
`"sha256"` before. Both stay readable for good: an incremental point carries the
entries of the files it did not read again from the point before it, so one chain's
folded list can hold both kinds, and every check (a verification, a deep one, the
anomaly fingerprint) takes each hash's own algorithm.

Why BLAKE3: a backup hashes its bytes twice, once per file for the manifest and once
for the whole archive, and the two hashes were most of the CPU a backup spends beyond
reading and writing (docs/benchmarks.md, issue 23). BLAKE3 is a cryptographic hash
like SHA-256 and runs 3.4-4x faster on one core (7.2-7.9 GB/s against SHA-256's
1.95-2.05 GB/s with SHA instructions on the 2026-12-02 AMD host; 4.35 against 1.28
GiB/s on the Intel host of the same day). The per-file switch made a `tar.zst` run
through the service 15% faster; the archive's switch took about 0.5 CPU-s per GiB off an
SSH job in tar mode and 0.9 CPU-s off a 1 GiB `tar.zst` run on the Intel host
(docs/benchmarks.md, "File hashes: BLAKE3" and "The archive's hash: BLAKE3").

`b3sum` (Debian's package of that name) checks an archive against its manifest, or a
restored file against its entry, as `sha256sum` does for the older ones.
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
ARCHIVE_HASH = FILE_HASH
"""The key (and the algorithm) of the archive's own hash in what this version writes;
archives stored before it carry OLDER_FILE_HASH's."""


class Hash(Protocol):
    """What a writer and a checker need of a hash object (hashlib's and blake3's)."""

    def update(self, data: bytes | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


_MAKERS: dict[str, Callable[[], Hash]] = {
    FILE_HASH: blake3.blake3,
    OLDER_FILE_HASH: hashlib.sha256,
}
FILE_HASHES = tuple(_MAKERS)
"""Every key a hash may have, the current one first."""
TITLES = {FILE_HASH: "BLAKE3", OLDER_FILE_HASH: "SHA-256"}
"""How messages name each algorithm."""


def new_file_hash() -> Hash:
    """A hash for one file's bytes, of the algorithm FILE_HASH names."""
    return _MAKERS[FILE_HASH]()


def hash_for(algorithm: str) -> Hash:
    """A fresh hash of `algorithm` (one of FILE_HASHES); ValueError for anything else."""
    make = _MAKERS.get(algorithm)
    if make is None:
        raise ValueError(f"unknown file hash {algorithm!r}")
    return make()


def named_hash(named: Mapping[str, Any]) -> tuple[str, str] | None:
    """The hash a mapping names by its key (a file's manifest entry, a manifest's
    `archive` section, a row's hash columns) as (algorithm, hexadecimal digest), or None
    when it has none (not a file, a file listed without one, a run that stored nothing)."""
    for algorithm in FILE_HASHES:
        value = named.get(algorithm)
        if isinstance(value, str) and value:
            return algorithm, value
    return None
