"""Restoring one point of an incremental chain (issue 17).

The point's whole file list (`point_manifest`: its own manifest's when that lists
every path, else folded from the manifests of its chain) names, for each path present
at that point, the archive of the chain holding its bytes (core/chain.py). A restore reads only
the archives holding a chosen path, and from each only those members (by ranged
reads where the archive has an index), so one file comes from the one archive that
holds it. Directories come from the point's own archive, which lists them all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from mackuper.core.chain import chain_of, fold_files, holder, lists_changes, sibling_key
from mackuper.pipeline.age import SCRYPT_WORK_FACTOR
from mackuper.restore.archives import StoredArchive
from mackuper.restore.errors import RestoreError
from mackuper.restore.formats import Member, Opener
from mackuper.restore.manifest import manifest_files, read_manifest, unsealed
from mackuper.restore.seekable import open_selected

Members = Iterator[tuple[Member, Opener | None]]


@dataclass(frozen=True)
class Part:
    """The members to read from one archive of the chain."""

    archive: StoredArchive
    paths: frozenset[str]


def is_chain_point(manifest: dict[str, Any] | None) -> bool:
    """Whether the manifest is of an incremental point that other archives complete."""
    if manifest is None:
        return False
    chain = chain_of(manifest)
    return chain is not None and chain["level"] > 0


def point_manifest(
    point: StoredArchive,
    manifest: dict[str, Any] | None,
    max_work_factor: int = SCRYPT_WORK_FACTOR,
) -> dict[str, Any] | None:
    """The manifest of `point` with `files` listing every path present at it.

    A manifest that lists its changes only (core/chain.py) is folded with the
    manifests of its chain, read back to the nearest one that lists every path (the
    full's, or one written before manifests listed changes); any other comes back as
    is, and so does one whose file list is sealed without its key. Raises RestoreError
    when a manifest of the chain cannot be read or opened, or is not of this chain.
    """
    chain = chain_of(manifest) if manifest is not None else None
    if manifest is None or chain is None or not lists_changes(manifest):
        return manifest
    if "files" not in manifest:
        return manifest
    archives = [str(name) for name in chain["archives"]]
    own = archives[-1]
    listings: list[tuple[str, dict[str, Any]]] = [(own, manifest)]
    for level in range(len(archives) - 2, -1, -1):
        name = archives[level]
        earlier = _chain_manifest(point, name, max_work_factor)
        their = chain_of(earlier)
        if their is None or their["archives"] != archives[: level + 1]:
            raise RestoreError(
                f"the manifest of {name}, which this point builds on, is not of its chain"
            )
        if "files" not in earlier:
            raise RestoreError(
                f"the file list of {name}, which this point builds on, is encrypted: give"
                " the backup's key (or restore it with tar, see the README)"
            )
        listings.insert(0, (name, earlier))
        if not lists_changes(earlier):
            break
    chain = {key: value for key, value in chain.items() if key != "listing"}
    whole = {key: value for key, value in manifest.items() if key != "removed"}
    return {**whole, "chain": chain, "files": fold_files(listings)}


def _chain_manifest(point: StoredArchive, name: str, max_work_factor: int) -> dict[str, Any]:
    try:
        key = sibling_key(point.key, name)
    except ValueError as error:
        raise RestoreError(f"the chain of this backup names {error}") from None
    try:
        return unsealed(read_manifest(point.destination, key), point.keys, max_work_factor)
    except RestoreError as error:
        raise RestoreError(f"{name}, which this point builds on: {error}") from None


def plan_parts(
    point: StoredArchive, manifest: dict[str, Any], selected: Callable[[str], bool]
) -> list[Part]:
    """The archives to read for the chosen paths of a point, in chain order.

    Raises RestoreError when the point's file list cannot be read (a sealed manifest
    without its key): without it, which archive holds what is unknown.
    """
    chain = chain_of(manifest)
    if chain is None:
        raise RestoreError("this backup's manifest does not describe its chain")
    if "files" not in manifest:
        raise RestoreError(
            "this backup is one point of an incremental chain and its file list is encrypted:"
            " give its key to restore it (or restore it with tar, see the README)"
        )
    own = point.key.rsplit("/", 1)[-1]
    wanted: dict[str, set[str]] = {}
    for item in manifest_files(manifest):
        path = str(item["path"]).strip("/")
        if selected(path):
            wanted.setdefault(holder(item, own), set()).add(path)
    parts = []
    for name in chain["archives"]:
        if name in wanted:
            try:
                key = sibling_key(point.key, str(name))
            except ValueError as error:
                raise RestoreError(f"the chain of this backup names {error}") from None
            parts.append(
                Part(StoredArchive(point.destination, key, point.keys), frozenset(wanted[name]))
            )
    return parts


def chain_holder(
    point: StoredArchive, manifest: dict[str, Any] | None, wanted: tuple[str, ...]
) -> StoredArchive | None:
    """The earlier archive of the chain holding the file `wanted` of a point, or None
    (not a chain point, a folder, or a file stored in the point's own archive)."""
    if not is_chain_point(manifest):
        return None
    path = "/".join(wanted)
    for item in manifest_files(manifest or {}):
        if str(item["path"]).strip("/") == path and item.get("type") != "directory":
            name = item.get("archive")
            if not isinstance(name, str) or not name:
                return None
            try:
                return StoredArchive(point.destination, sibling_key(point.key, name), point.keys)
            except ValueError as error:
                raise RestoreError(f"the chain of this backup names {error}") from None
    return None


@contextlib.contextmanager
def open_parts(
    parts: list[Part], on_bytes: Callable[[bytes], None] | None = None
) -> Iterator[Members]:
    """The chosen members of every part, one archive after another; each archive is
    opened only when the previous one is done."""

    def members() -> Generator[tuple[Member, Opener | None]]:
        for part in parts:
            manifest = _manifest(part.archive)
            with open_selected(part.archive, manifest, part.paths.__contains__, on_bytes) as found:
                for member, opener in found:
                    if member.name.strip("/") in part.paths:
                        yield member, opener

    generator = members()
    try:
        yield generator
    finally:
        generator.close()


def _manifest(archive: StoredArchive) -> dict[str, Any] | None:
    try:
        return unsealed(read_manifest(archive.destination, archive.key), archive.keys)
    except RestoreError:
        return None
