"""Incremental chains: pure decisions (issue 17).

A chain is a full archive followed by incrementals, each in GNU tar's own incremental
format: every directory entry carries the list of what the directory holds at that
point (`GNU.dumpdir`: `Y` stored in this archive, `N` kept from an earlier one, `D` a
directory), and only new or changed files are stored. `tar --listed-incremental=/dev/null
-x` over the full and then each incremental in order rebuilds the source as it was.

A path counts as unchanged when its type, size, modification time, inode and status
change time (ctime) all equal what the previous point recorded, as GNU tar judges it;
an unchanged file is never opened. Renaming, `chmod`, `chown`, a new hard link and
deleting another name of the file all move the ctime, so they are seen too.

Manifest fields: `chain` = {level, full, previous, archives[, listing]}. A full's
`files` lists every path present at it. An incremental point's manifest written since
issue 17's manifest rework has `"listing": "changes"`: its `files` lists only what its
own archive stores (every directory, with its list, and each new or changed path) and
`removed` the paths present at the previous point and gone at this one, so an
unchanged day's manifest is as small as its archive; `fold_files` rebuilds the point's
whole list from the manifests of its chain (whose archives a restore needs anyway).
An incremental manifest without `listing` (written before) lists every path present
at its point itself, an entry held by an earlier archive naming it in `archive`;
`fold_files` starts from such a manifest as it does from a full's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mackuper.core.naming import parse_archive_name

STAT_FIELDS = ("ino", "ctime_ns", "mtime_ns")
LISTS_CHANGES = "changes"
"""`chain.listing` of a point whose `files` are its own archive's and `removed` the gone."""
"""What a chain manifest's entries add for change detection (besides type and size)."""


@dataclass(frozen=True)
class BackupMode:
    """A job's `options["backup_mode"]`: full every time, or a chain."""

    incremental: bool = False
    full_every_runs: int | None = None
    """A chain holds at most this many points (the full counts): the next run after is a full."""
    full_every_days: int | None = None
    """A full is made when the chain's full is at least this many days old."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> BackupMode:
        stored = (options or {}).get("backup_mode") or {}
        if not isinstance(stored, dict) or stored.get("mode") != "incremental":
            return cls()
        runs, days = stored.get("full_every_runs"), stored.get("full_every_days")
        return cls(
            incremental=True,
            full_every_runs=runs if isinstance(runs, int) and runs > 0 else None,
            full_every_days=days if isinstance(days, int) and days > 0 else None,
        )


@dataclass(frozen=True)
class Point:
    """The newest good point of a job's chain, as the next run sees it."""

    run_id: int
    archive_name: str
    level: int
    full_started_at: datetime
    archives: tuple[str, ...]
    """Every archive of the chain up to and including this point, in order."""
    needs: tuple[int, ...] = ()
    """The run ids of `archives`, in the same order."""
    broken: str | None = None
    """Why this point cannot be built on (an archive missing or failed), or None."""


@dataclass(frozen=True)
class Decision:
    full: bool
    reason: str


def decide(mode: BackupMode, base: Point | None, now: datetime) -> Decision:
    """Whether the next run of a job is a full or an incremental on `base`, and why."""
    if not mode.incremental:
        return Decision(True, "the job makes full backups")
    if base is None:
        return Decision(True, "no earlier point of this job to build on: this run is the full")
    if base.broken:
        return Decision(True, f"chain broken: {base.broken}; this run starts a new full")
    if mode.full_every_runs is not None and base.level + 1 >= mode.full_every_runs:
        return Decision(
            True,
            f"the chain has {base.level + 1} points (a full every {mode.full_every_runs} runs)",
        )
    if mode.full_every_days is not None and now - base.full_started_at >= timedelta(
        days=mode.full_every_days
    ):
        return Decision(
            True, f"the chain's full is {mode.full_every_days} days old or more: a new full"
        )
    return Decision(False, f"incremental on {base.archive_name} (level {base.level + 1})")


_KIND = {"file": "file", "hardlink": "file", "directory": "directory", "symlink": "symlink"}


def unchanged(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """Whether a path is as the previous point recorded it.

    `previous` is that point's manifest entry (type, size, mtime_ns, ino, ctime_ns);
    `current` is `Identity.record()` of the path now. A symbolic link's target cannot
    change in place (a new link is a new inode), so it needs no comparison.
    """
    if previous is None or _KIND.get(str(previous.get("type"))) != current["type"]:
        return False
    if current["type"] == "file" and previous.get("size") != current["size"]:
        return False
    return all(previous.get(name) == current[name] for name in ("mtime_ns", "ino", "ctime_ns"))


def dumpdir(children: Iterable[tuple[str, str]]) -> bytes:
    """GNU tar's dumpdir of one directory: `children` are (name, letter) with letter Y,
    N or D; sorted by name bytes as GNU tar sorts them, NUL separated, NUL ended."""
    encoded = sorted((name.encode("utf-8", "surrogateescape"), letter) for name, letter in children)
    return b"".join(letter.encode() + name + b"\0" for name, letter in encoded) + b"\0"


def own_members(files: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest entries stored in this archive itself (not held by an earlier one)."""
    return [item for item in files if "archive" not in item]


def holder(item: Mapping[str, Any], own_name: str) -> str:
    """The name of the archive holding a manifest entry's bytes."""
    name = item.get("archive")
    return name if isinstance(name, str) and name else own_name


def sibling_key(point_key: str, name: str) -> str:
    """The key of archive `name` of the same job at the same destination as `point_key`.

    Keys are `[prefix/]slug/YYYY/MM/name`; the year and month come from the name.
    Raises ValueError for a name Mackuper did not make.
    """
    parsed = parse_archive_name(name)
    if parsed is None or "/" in name:
        raise ValueError(f"{name!r} is not an archive name")
    parts = point_key.split("/")
    if len(parts) < 4:
        raise ValueError(f"{point_key!r} is not an archive key")
    when = parsed.started_second
    return "/".join([*parts[:-3], f"{when:%Y}", f"{when:%m}", name])


def chain_of(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest's `chain` object when it is a well-formed one, else None."""
    chain = manifest.get("chain")
    if not isinstance(chain, dict):
        return None
    archives = chain.get("archives")
    if not isinstance(archives, list) or not all(isinstance(name, str) for name in archives):
        return None
    if not isinstance(chain.get("level"), int) or not archives:
        return None
    return chain


def lists_changes(manifest: Mapping[str, Any] | None) -> bool:
    """Whether the manifest is of an incremental point listing only its changes, so
    its whole file list needs the manifests of its chain (`fold_files`)."""
    chain = chain_of(manifest) if manifest is not None else None
    return chain is not None and chain["level"] > 0 and chain.get("listing") == LISTS_CHANGES


def removed_paths(manifest: Mapping[str, Any]) -> list[str]:
    """The paths a changes-only manifest says are gone since the previous point."""
    removed = manifest.get("removed")
    if not isinstance(removed, list):
        return []
    return [path for path in removed if isinstance(path, str)]


def _listed(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    files = manifest.get("files")
    if not isinstance(files, list):
        return []
    return [item for item in files if isinstance(item, dict) and isinstance(item.get("path"), str)]


def fold_files(listings: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The whole file list of the last of `listings`, as a manifest listing every path
    present at its point gives it: an entry held by an earlier archive names it in
    `archive` (and has no `offset`), the point's own entries come last, as written.

    `listings` are (archive name, manifest with its file list) in chain order, from a
    manifest listing every path (a full's, or an incremental one written before
    manifests listed changes) to the point; each later one lists its changes.
    """
    *earlier, (_own_name, own) = listings
    held: dict[str, dict[str, Any]] = {}
    for name, manifest in earlier:
        for path in removed_paths(manifest):
            held.pop(path, None)
        for item in _listed(manifest):
            entry = {key: value for key, value in item.items() if key != "offset"}
            entry.setdefault("archive", name)
            held.pop(entry["path"], None)  # moved to the end: the latest holder's order
            held[entry["path"]] = entry
    for path in removed_paths(own):
        held.pop(path, None)
    own_items = _listed(own)
    for item in own_items:
        held.pop(item["path"], None)
    return [*held.values(), *own_items]
