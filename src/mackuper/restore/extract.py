"""Extraction: archive members to a target, safely, with an overwrite policy.

Every member is judged before anything is written (paths.py); refused members
are logged with the reason and the restore goes on. Nothing is written outside
the target: names cannot escape, links cannot point out, the targets never
write through a link, and device nodes are never made.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mackuper.restore.errors import Refused, RestoreError
from mackuper.restore.formats import Member, MemberKind, Opener
from mackuper.restore.paths import check_symlink, is_selected, keep_both_name, member_parts
from mackuper.restore.targets import Existing, Target

LOGGED_LINES_LIMIT = 500
DRY_RUN_SAMPLE = 200


class Policy(enum.StrEnum):
    SKIP = "skip"
    OVERWRITE = "overwrite"
    KEEP_BOTH = "keep-both"


class ExtractHooks(Protocol):
    def log(self, level: str, message: str) -> None: ...

    def progress(
        self, *, bytes_read: int, bytes_written: int, files_done: int, current: str
    ) -> None: ...


@dataclass
class ExtractOptions:
    policy: Policy = Policy.SKIP
    dry_run: bool = False
    selection: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class ExtractReport:
    files: int = 0
    directories: int = 0
    links: int = 0
    bytes: int = 0
    skipped: int = 0
    renamed: int = 0
    refused: int = 0
    failed: int = 0
    matched: int = 0
    sample: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "directories": self.directories,
            "links": self.links,
            "bytes": self.bytes,
            "skipped": self.skipped,
            "renamed": self.renamed,
            "refused": self.refused,
            "failed": self.failed,
            "matched": self.matched,
        }


class Extractor:
    def __init__(
        self,
        target: Target,
        options: ExtractOptions,
        hooks: ExtractHooks,
        bytes_read: Any = None,
    ) -> None:
        self.target = target
        self.options = options
        self.hooks = hooks
        self.bytes_read = bytes_read or (lambda: 0)
        self.report = ExtractReport()
        self.restored_files: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.logged = 0

    def _note(self, level: str, message: str) -> None:
        self.logged += 1
        if self.logged <= LOGGED_LINES_LIMIT:
            self.hooks.log(level, message)
        elif self.logged == LOGGED_LINES_LIMIT + 1:
            self.hooks.log("warning", "more problems follow; only the counts are kept from here")

    def _progress(self, current: str) -> None:
        self.hooks.progress(
            bytes_read=self.bytes_read(),
            bytes_written=self.report.bytes,
            files_done=self.report.files + self.report.links,
            current=current,
        )

    def run(self, members: Iterator[tuple[Member, Opener | None]]) -> ExtractReport:
        """Extract every selected member; returns the counts. Raises RestoreError."""
        if not self.options.dry_run:
            self.target.prepare()
        for member, opener in members:
            try:
                self._one(member, opener)
            except Refused as error:
                self.report.refused += 1
                self._note("warning", f"refused {member.name!r}: {error}")
            except OSError as error:
                if error.errno in {errno.ENOSPC, errno.EDQUOT, errno.EROFS}:
                    raise RestoreError(
                        f"the target cannot take more data ({error.strerror})"
                    ) from None
                self.report.failed += 1
                self._note("error", f"could not restore {member.name!r}: {error.strerror or error}")
        if self.options.selection and not self.report.matched:
            raise RestoreError("none of the selected paths is in this backup")
        return self.report

    def _one(self, member: Member, opener: Opener | None) -> None:
        if member.refused:
            raise Refused(member.refused)
        parts = member_parts(member.name)
        if not is_selected(parts, self.options.selection):
            return
        self.report.matched += 1
        if member.kind is MemberKind.SPECIAL:
            raise Refused(f"it is {member.special or 'a special file'}; those are never restored")
        if member.kind is MemberKind.SYMLINK:
            check_symlink(parts, member.link)
        link_source: tuple[str, ...] = ()
        if member.kind is MemberKind.HARDLINK:
            try:
                link_source = self.restored_files[member_parts(member.link)]
            except (Refused, KeyError):
                raise Refused(
                    f"it is a hard link to {member.link!r}, which was not restored here"
                ) from None
        existing = self.target.existing(parts)
        if member.kind is MemberKind.DIRECTORY:
            self._directory(member, parts, existing)
            return
        if existing == Existing.DIRECTORY:
            raise Refused("a directory with that name is in the way")
        final = parts
        if existing != Existing.NONE:
            if self.options.policy is Policy.SKIP:
                self.report.skipped += 1
                self._note("info", f"kept the existing {'/'.join(parts)}")
                return
            if self.options.policy is Policy.KEEP_BOTH:
                final = self._free_name(parts)
                self.report.renamed += 1
        self._progress(member.name)
        if self.options.dry_run:
            self._count(member, final)
            return
        if member.kind is MemberKind.SYMLINK:
            self.target.make_symlink(final, member.link)
        elif member.kind is MemberKind.HARDLINK:
            self.target.make_hardlink(final, link_source)
        else:
            if opener is None:
                raise Refused("its data cannot be read")
            with opener() as data:
                self.target.write_file(
                    final, data, member.mode, member.mtime, self._written_bytes(member.name)
                )
        self._count(member, final)
        if final != parts:
            self._note("info", f"{'/'.join(parts)} exists; restored as {final[-1]}")

    def _written_bytes(self, current: str) -> Any:
        def on_bytes(count: int) -> None:
            self.report.bytes += count
            self._progress(current)

        return on_bytes

    def _count(self, member: Member, final: tuple[str, ...]) -> None:
        if member.kind is MemberKind.FILE:
            self.report.files += 1
            self.restored_files[member_parts(member.name)] = final
            if self.options.dry_run:
                self.report.bytes += member.size
        else:
            self.report.links += 1
            if member.kind is MemberKind.HARDLINK:
                self.restored_files[member_parts(member.name)] = final
        if self.options.dry_run and len(self.report.sample) < DRY_RUN_SAMPLE:
            self.report.sample.append("/".join(final))

    def _directory(self, member: Member, parts: tuple[str, ...], existing: str) -> None:
        if existing == Existing.DIRECTORY:
            return
        if existing != Existing.NONE:
            raise Refused("something that is not a directory is in the way")
        if not self.options.dry_run:
            self.target.make_directory(parts, member.mode)
        self.report.directories += 1

    def _free_name(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        for attempt in range(1, 1000):
            candidate = (*parts[:-1], keep_both_name(parts[-1], attempt))
            if self.target.existing(candidate) == Existing.NONE:
                return candidate
        raise Refused("no free name was found to keep both copies")
