"""Verification: re-read a stored archive, compare its hash, optionally open every entry
and compare each file with its manifest entry's hash (core/filehash.py: BLAKE3, or SHA-256
in what was written before it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mackuper.core.filehash import TITLES, hash_for
from mackuper.restore.archives import StoredArchive, open_members
from mackuper.restore.errors import RestoreError
from mackuper.restore.extract import ExtractHooks
from mackuper.restore.formats import Member, MemberKind, Opener
from mackuper.restore.storage import open_stream

CHUNK = 1 << 20


class VerifyFailed(RestoreError):
    """The stored archive does not match its manifest."""


@dataclass
class VerifyResult:
    size: int = 0
    algorithm: str = ""
    digest: str = ""
    """The stored bytes' hash, of the algorithm the manifest (or the catalog) names."""
    entries: int = 0
    files_checked: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            self.algorithm: self.digest,
            "entries": self.entries,
            "files_checked": self.files_checked,
        }


class _Hasher:
    def __init__(self, hooks: ExtractHooks, algorithm: str) -> None:
        self.digest = hash_for(algorithm)
        self.size = 0
        self.hooks = hooks

    def __call__(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        self.hooks.progress(bytes_read=self.size, bytes_written=0, files_done=0, current="")


def verify_archive(
    archive: StoredArchive,
    expected_hash: tuple[str, str],
    expected_size: int | None,
    deep: bool,
    file_hashes: dict[str, tuple[str, str]],
    hooks: ExtractHooks,
) -> VerifyResult:
    """Check the stored bytes (and with `deep` every entry); raises VerifyFailed.

    `expected_hash`: (algorithm, hexadecimal digest) of the stored bytes; `file_hashes`:
    path (no leading or trailing slash) -> (algorithm, hexadecimal digest) of each file
    this archive stores, from its manifest."""
    algorithm, expected = expected_hash
    hasher = _Hasher(hooks, algorithm)
    result = VerifyResult()
    if deep and archive.archive_format != "zip":
        with open_members(archive, hasher, drain=True) as members:
            for member, opener in members:
                _check_member(member, opener, file_hashes, result)
    else:
        with open_stream(archive.destination, archive.key, hasher) as stream:
            while stream.read(CHUNK):
                pass
        if deep:
            with open_members(archive) as members:
                for member, opener in members:
                    _check_member(member, opener, file_hashes, result)
    result.size = hasher.size
    result.algorithm, result.digest = algorithm, hasher.digest.hexdigest()
    if expected_size is not None and result.size != expected_size:
        raise VerifyFailed(
            f"the stored archive has {result.size} bytes but {expected_size} were written:"
            " the object was changed or truncated"
        )
    if result.digest != expected:
        raise VerifyFailed(
            f"the stored archive's {TITLES[algorithm]} is {result.digest} but the manifest"
            f" says {expected}: the object was changed or damaged"
        )
    if result.problems:
        raise VerifyFailed(
            f"{len(result.problems)} entr{'y' if len(result.problems) == 1 else 'ies'}"
            f" did not match the manifest: {'; '.join(result.problems[:5])}"
        )
    return result


def _check_member(
    member: Member,
    opener: Opener | None,
    file_hashes: dict[str, tuple[str, str]],
    result: VerifyResult,
) -> None:
    result.entries += 1
    if member.kind is not MemberKind.FILE or opener is None:
        return
    expected = file_hashes.get(member.name.strip("/"))
    digest = hash_for(expected[0]) if expected is not None else None
    size = 0
    with opener() as data:
        while chunk := data.read(CHUNK):
            if digest is not None:
                digest.update(chunk)
            size += len(chunk)
    result.files_checked += 1
    if size != member.size:
        result.problems.append(f"{member.name} has {size} bytes instead of {member.size}")
    if expected is not None and digest is not None and expected[1] != digest.hexdigest():
        result.problems.append(f"{member.name} differs from the file that was backed up")
