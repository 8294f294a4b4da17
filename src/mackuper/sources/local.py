"""A local directory tree (or single files) on the Mackuper host."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import BinaryIO

from mackuper.core.globs import is_excluded
from mackuper.sources.base import Entry, EntryType, Identity, Reporter, SourceError

Opener = Callable[[], BinaryIO] | None


def _open_file(path: str) -> BinaryIO:
    return open(path, "rb", buffering=0)  # noqa: SIM115 - the archive writer closes it


def member_name(path: str) -> str:
    """The archive name of an absolute path, as GNU tar writes it (no leading slash)."""
    return path.lstrip("/")


_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}


def identity(info: os.stat_result) -> Identity:
    """What change detection compares for one lstat (core/chain.py)."""
    return Identity(
        type=_KINDS.get(stat.S_IFMT(info.st_mode), "other"),
        size=info.st_size if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode) else 0,
        mtime_ns=info.st_mtime_ns,
        ino=info.st_ino,
        ctime_ns=info.st_ctime_ns,
        nlink=info.st_nlink,
    )


class LocalSource:
    def __init__(self, paths: Sequence[str], excludes: Sequence[str] = ()) -> None:
        if not paths:
            raise SourceError("no source path is set")
        self.paths = [os.path.abspath(path) for path in paths]
        self.excludes = list(excludes)

    def describe(self) -> str:
        return "local: " + ", ".join(self.paths)

    def close(self) -> None:
        return None

    def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
        for root in self.paths:
            try:
                info = os.lstat(root)
            except FileNotFoundError:
                raise SourceError(f"source path {root} does not exist") from None
            except PermissionError:
                raise SourceError(
                    f"source path {root} is not readable (permission denied)"
                ) from None
            yield from self._walk(root, root, info, reporter, {})

    def _walk(
        self,
        root: str,
        path: str,
        info: os.stat_result,
        reporter: Reporter,
        seen_inodes: dict[tuple[int, int], str],
    ) -> Iterator[Entry]:
        children: list[tuple[str, os.stat_result]] = []
        if stat.S_ISDIR(info.st_mode):
            children = self._children(root, path, reporter)
        entry = self._entry(path, info, reporter, seen_inodes)
        if entry is not None:
            if entry.type is EntryType.DIRECTORY:
                entry.listing = [
                    (child.rsplit("/", 1)[-1], identity(child_info))
                    for child, child_info in children
                ]
            yield entry
        for child, child_info in children:
            yield from self._walk(root, child, child_info, reporter, seen_inodes)

    def _children(
        self, root: str, path: str, reporter: Reporter
    ) -> list[tuple[str, os.stat_result]]:
        """The directory's children that will be backed up, by name, with their lstat."""
        try:
            with os.scandir(path) as iterator:
                listed = sorted(iterator, key=lambda child: child.name)
        except OSError as error:
            reporter.problem(f"cannot list {path}: {error.strerror}")
            return []
        children = []
        for child in listed:
            if self.excludes:
                relative = child.path[len(root) :].lstrip("/") if root != "/" else child.path
                if is_excluded(relative.lstrip("/"), self.excludes):
                    continue
            try:
                child_info = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                reporter.problem(f"{child.path} vanished before it was read")
                continue
            except OSError as error:
                reporter.problem(f"cannot read {child.path}: {error.strerror}")
                continue
            if _KINDS.get(stat.S_IFMT(child_info.st_mode)) is None:
                reporter.note(f"skipped {child.path}: sockets, fifos and devices are not backed up")
                continue
            children.append((child.path, child_info))
        return children

    def _entry(
        self,
        path: str,
        info: os.stat_result,
        reporter: Reporter,
        seen_inodes: dict[tuple[int, int], str],
    ) -> Entry | None:
        name = member_name(path)
        mode = stat.S_IMODE(info.st_mode)
        known = identity(info)

        def make(kind: EntryType, size: int = 0, link: str = "", opener: Opener = None) -> Entry:
            return Entry(
                name=name,
                type=kind,
                size=size,
                mode=mode,
                mtime=info.st_mtime,
                uid=info.st_uid,
                gid=info.st_gid,
                link_target=link,
                open=opener,
                identity=known,
            )

        if stat.S_ISDIR(info.st_mode):
            return make(EntryType.DIRECTORY)
        if stat.S_ISLNK(info.st_mode):
            try:
                target = os.readlink(path)
            except OSError as error:
                reporter.problem(f"cannot read link {path}: {error.strerror}")
                return None
            return make(EntryType.SYMLINK, link=target)
        if stat.S_ISREG(info.st_mode):
            if info.st_nlink > 1:
                inode = (info.st_dev, info.st_ino)
                first = seen_inodes.get(inode)
                if first is not None:
                    # ZIP has no hard links and stores the bytes again, so keep an opener.
                    return make(
                        EntryType.HARDLINK,
                        size=info.st_size,
                        link=first,
                        opener=partial(_open_file, path),
                    )
                seen_inodes[inode] = name
            return make(EntryType.FILE, size=info.st_size, opener=partial(_open_file, path))
        reporter.note(f"skipped {path}: sockets, fifos and devices are not backed up")
        return None
