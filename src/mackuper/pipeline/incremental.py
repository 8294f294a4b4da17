"""The incremental step between a source and the tar writer (issue 17).

Every directory is written, carrying GNU tar's `GNU.dumpdir` list of its contents;
a file, link or symbolic link is written only when it is new or changed since the
previous point (core/chain.py decides), and is otherwise never opened: its manifest
entry is carried over from the previous point, naming the archive that holds it.

A directory's list is made from the same lstat results the source then yields its
children with, so the list's Y/N and what is written always agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mackuper.core.chain import LISTS_CHANGES, STAT_FIELDS, dumpdir, unchanged
from mackuper.core.snar import dumpdir_entries
from mackuper.pipeline.chainstate import PreviousPoint
from mackuper.pipeline.filelist import FileList
from mackuper.sources.base import Entry, EntryType

KEEP_FOR_LISTINGS_UP_TO = 4096
"""Children of a directory up to which the unchanged ones' previous entries are kept
from its lookup until they arrive (~1 KiB each); past it, each is looked up again."""


@dataclass
class ChainPlan:
    """How this run extends its job's chain."""

    level: int
    """0: this run is the chain's full."""
    earlier: tuple[str, ...] = ()
    """Archive names of the chain before this run, full first (empty for a full)."""
    previous: PreviousPoint = field(default_factory=PreviousPoint)
    """The previous point's manifest entries by path, each naming its `archive` (in a
    temporary database past pipeline/chainstate.py's IN_MEMORY: `close` drops it)."""
    reason: str = ""
    """Why this run is a full or an incremental (its log says it)."""
    needs: tuple[int, ...] = ()
    """Run ids of `earlier`, in the same order (what the database links the point to)."""
    remote: bool = False
    """The remote GNU tar decides what changed (an SSH source; `RemoteIncremental`)."""
    snapshot: bytes = b""
    """Of a remote chain: GNU tar's snapshot to start from (empty for a full)."""

    def chain(self, own_name: str) -> dict[str, Any]:
        """The manifest's `chain` object for this run's archive `own_name`."""
        archives = [*self.earlier, own_name]
        chain: dict[str, Any] = {
            "level": self.level,
            "full": archives[0],
            "previous": self.earlier[-1] if self.earlier else None,
            "archives": archives,
        }
        if self.level > 0:
            chain["listing"] = LISTS_CHANGES
        return chain

    def listed(self, files: FileList) -> dict[str, Any]:
        """The manifest's `files` (and `removed`) for this point's whole list `files`.

        A full lists everything. An incremental lists what its own archive stores and
        the paths gone since the previous point (core/chain.py `fold_files` rebuilds
        the rest from the chain's manifests): an unchanged day's manifest then holds
        its directories only, 44 KiB instead of 6.5 MiB on the 1 GiB bench corpus
        (0.96 MiB with zstd, which was measured too: docs/benchmarks.md). An
        incremental's own list is a new FileList: the caller closes it.
        """
        if self.level == 0:
            return {"files": files}
        own = FileList()

        def paths() -> Iterator[str]:
            """Every path of this point, collecting its own entries on the way: one pass."""
            for item in files:
                if "archive" not in item:
                    own.append(item)
                yield str(item["path"])

        try:
            removed = self.previous.absent(paths())
            own.flush()
        except BaseException:
            own.close()
            raise
        return {"files": own, "removed": removed}

    def close(self) -> None:
        """Drops the previous point's temporary database, if it has one (idempotent)."""
        self.previous.close()


class Incremental:
    """Decides, entry by entry, what this run writes; keeps what it carries over."""

    def __init__(self, plan: ChainPlan) -> None:
        self.previous = plan.previous
        self.changed: dict[str, bool] = {}
        """Children judged when their directory was listed, until they arrive."""
        self.kept: dict[str, dict[str, Any]] = {}
        """The previous entries of those of them judged unchanged, until they arrive."""
        self.written: set[str] = set()
        """Names written in this archive that later hard links may name (nlink > 1)."""
        self.first_names: dict[str, str] = {}
        """A hard link's first name left out of this archive -> the name written instead."""

    def select(self, entry: Entry) -> bool:
        """Whether to write `entry` (a directory gets its dumpdir); False: carry it over."""
        if entry.type is EntryType.DIRECTORY:
            entry.dumpdir = dumpdir(self._letters(entry))
            return True
        changed = self.changed.pop(entry.name, None)
        if changed is None:
            changed = entry.identity is None or not unchanged(
                self.previous.get(entry.name), entry.identity.record()
            )
        if not changed:
            return False
        if entry.type is EntryType.HARDLINK:
            first = self.first_names.get(entry.link_target, entry.link_target)
            if first in self.written:
                entry.link_target = first
            else:
                # Its first name is not in this archive: store the bytes here.
                self.first_names[entry.link_target] = entry.name
                entry.type, entry.link_target = EntryType.FILE, ""
        return True

    def _letters(self, directory: Entry) -> list[tuple[str, str]]:
        listing = directory.listing or []
        # One lookup for the directory's files: a point past IN_MEMORY is in a database.
        found = self.previous.get_many(
            [
                child(directory.name, name)
                for name, identity in listing
                if identity.type != "directory"
            ]
        )
        # The unchanged files' entries wait for them only in directories of a usual
        # size: a flat directory of a million files would hold ~0.9 GiB of them.
        keep = len(listing) <= KEEP_FOR_LISTINGS_UP_TO
        letters = []
        for name, identity in listing:
            path = child(directory.name, name)
            if identity.type == "directory":
                letters.append((name, "D"))
                continue
            previous = found.get(path)
            changed = not unchanged(previous, identity.record())
            self.changed[path] = changed
            if keep and previous is not None and not changed:
                self.kept[path] = previous
            letters.append((name, "Y" if changed else "N"))
        return letters

    def written_item(self, entry: Entry, item: dict[str, Any]) -> dict[str, Any]:
        """The manifest entry of a written `entry`, with what change detection compares."""
        if entry.identity is None or entry.identity.nlink > 1:
            self.written.add(entry.name)  # a later hard link's first name, maybe
        if entry.identity is not None:
            record = entry.identity.record()
            item.update({name: record[name] for name in STAT_FIELDS})
        return item

    def carried_item(self, entry: Entry) -> dict[str, Any] | None:
        """The previous point's entry for a path not written now (None: it is new)."""
        previous = self.kept.pop(entry.name, None) or self.previous.get(entry.name)
        if previous is None:
            return None
        item = dict(previous)
        item.pop("offset", None)
        return item


def child(directory: str, name: str) -> str:
    """A directory's child's member name; the root directory's name is empty ("/")."""
    return f"{directory}/{name}" if directory else name


class RemoteIncremental:
    """A chain made by the remote GNU tar (an SSH source in tar mode; core/snar.py).

    GNU tar already left out what did not change: every entry it sends is written as
    sent, its directories with their `GNU.dumpdir` lists intact. A list's `N` names
    are the paths kept from an earlier point: their manifest entries are carried over
    from the previous point's, naming the archive that holds them. A name the
    previous point does not know cannot be given a holder; `unknown` collects those
    (the run then keeps no snapshot, so the next one is a full).
    """

    def __init__(self, plan: ChainPlan) -> None:
        self.previous = plan.previous
        self.unknown: list[str] = []

    def select(self, entry: Entry) -> bool:
        return True

    def carried_children(self, entry: Entry) -> list[dict[str, Any]]:
        """The previous point's entries of the `N` names of a directory's list."""
        if entry.type is not EntryType.DIRECTORY or entry.dumpdir is None:
            return []
        carried = []
        for letter, name in dumpdir_entries(entry.dumpdir):
            if letter != "N":
                continue
            path = child(entry.name, name)
            previous = self.previous.get(path)
            if previous is None:
                self.unknown.append(path)
                continue
            item = dict(previous)
            item.pop("offset", None)
            carried.append(item)
        return carried

    def written_item(self, entry: Entry, item: dict[str, Any]) -> dict[str, Any]:
        return item

    def carried_item(self, entry: Entry) -> dict[str, Any] | None:
        return None
