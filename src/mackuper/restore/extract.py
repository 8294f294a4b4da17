"""Extraction: archive members to a target, safely, with an overwrite policy.

Every member is judged before anything is written (paths.py); refused members
are logged with the reason and the restore goes on. Nothing is written outside
the target: names cannot escape, the targets never write through a link, and
device nodes are never made.

Symbolic links are made last, after every file and folder, as tar's data filter
does, so no write can pass through one; then each is resolved against what is
now on disk under the target, following the other links as the kernel would
(`resolve_link`), and one that leads outside is removed and reported. Judging a
link by its text alone is not enough: `a/up -> ..` followed by
`p -> a/up/a/up/../../etc/passwd` reads as inside and leads out.

A hard link whose first name was not restored here (a selection that leaves it
out) gets the first name's bytes in a second pass over the archive; one whose
first name was kept as it was (policy `skip`) links to that file.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any, Protocol

from mackuper.restore.errors import Refused, RestoreError
from mackuper.restore.formats import Member, MemberKind, Opener
from mackuper.restore.paths import check_symlink, is_selected, keep_both_name, member_parts
from mackuper.restore.targets import Existing, Target

LOGGED_LINES_LIMIT = 500
DRY_RUN_SAMPLE = 200
MAX_LINK_HOPS = 40
"""Links followed while resolving one link (Linux's own limit), so a loop ends."""

Members = Iterator[tuple[Member, "Opener | None"]]


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
    declared_sizes: dict[str, int] | None = None
    """Member name -> size from the manifest; a file may not grow past it."""


def _grew(name: str, limit: int) -> str:
    return (
        f"{name!r} is larger than the {limit} bytes its manifest declares: the archive does"
        " not match its manifest, so the restore stopped"
    )


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
        self.kept_files: set[tuple[str, ...]] = set()
        self.deferred_links: list[Member] = []
        self.made_links: list[tuple[tuple[str, ...], str]] = []
        self.orphans: dict[tuple[str, ...], list[tuple[Member, tuple[str, ...]]]] = {}
        """First name of a hard link -> its other names waiting for its bytes."""
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

    def run(self, members: Members) -> ExtractReport:
        """Extract every selected member, links last; returns the counts. Raises RestoreError.

        When `needs_second_pass` is then true, call `finish_hard_links` with the
        archive's members once more.
        """
        if not self.options.dry_run:
            self.target.prepare()
        for member, opener in members:
            if member.kind is MemberKind.SYMLINK and not self.options.dry_run:
                self.deferred_links.append(member)
                continue
            self._guarded(member, partial(self._one, member, opener))
        for member in self.deferred_links:
            self._guarded(member, partial(self._one, member, None))
        self._check_links()
        if self.options.selection and not self.report.matched:
            raise RestoreError("none of the selected paths is in this backup")
        return self.report

    @property
    def needs_second_pass(self) -> bool:
        return bool(self.orphans)

    def finish_hard_links(self, members: Members) -> ExtractReport:
        """Give hard links whose first name was left out that name's bytes."""
        for member, opener in members:
            if not self.orphans:
                break
            if member.kind is not MemberKind.FILE or opener is None:
                continue
            try:
                parts = member_parts(member.name)
            except Refused:
                continue
            waiting = self.orphans.pop(parts, None)
            if waiting:
                self._guarded(member, partial(self._adopt, member, opener, waiting))
        for source, waiting in self.orphans.items():
            for member, _final in waiting:
                self.report.refused += 1
                self._note(
                    "warning",
                    f"refused {member.name!r}: it is a hard link to {'/'.join(source)!r},"
                    " which is not a file in this backup",
                )
        self.orphans.clear()
        return self.report

    def _adopt(
        self, source: Member, opener: Opener, waiting: list[tuple[Member, tuple[str, ...]]]
    ) -> None:
        """Write `source`'s bytes at the first waiting name, then link the others to it."""
        (first, first_final), *others = waiting
        self._progress(first.name)
        if not self.options.dry_run:
            self._write(first_final, source, opener, first.name)
        else:
            self.report.bytes += source.size
        self.report.files += 1
        self.restored_files[member_parts(first.name)] = first_final
        self._sample(first_final)
        for _member, final in others:
            if not self.options.dry_run:
                self.target.make_hardlink(final, first_final)
            self.report.links += 1
            self._sample(final)

    def _guarded(self, member: Member, action: Callable[[], None]) -> None:
        """Run `action` for `member`; a refusal or a failure is counted and logged."""
        try:
            action()
        except Refused as error:
            self.report.refused += 1
            self._note("warning", f"refused {member.name!r}: {error}")
        except OSError as error:
            if error.errno in {errno.ENOSPC, errno.EDQUOT, errno.EROFS}:
                raise RestoreError(f"the target cannot take more data ({error.strerror})") from None
            self.report.failed += 1
            self._note("error", f"could not restore {member.name!r}: {error.strerror or error}")

    def _check_links(self) -> None:
        """Remove every link made here that now leads outside the target."""
        for parts, name in self.made_links:
            try:
                inside = resolve_link(self.target, parts) is not None
            except (OSError, Refused):
                inside = False
            if inside:
                continue
            try:
                self.target.remove_link(parts)
            except OSError as error:
                raise RestoreError(
                    f"{name!r} leads outside the target and could not be removed"
                    f" ({error.strerror or error}): remove it by hand"
                ) from None
            self.report.links -= 1
            self.report.refused += 1
            self._note(
                "warning",
                f"refused {name!r}: it is a symbolic link that leads outside the target"
                " through other links; it was removed",
            )

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
        source_parts: tuple[str, ...] = ()
        if member.kind is MemberKind.HARDLINK:
            try:
                source_parts = member_parts(member.link)
            except Refused as error:
                raise Refused(
                    f"its hard link source {member.link!r} is not valid: {error}"
                ) from None
            link_source = self.restored_files.get(source_parts, ())
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
                if member.kind in {MemberKind.FILE, MemberKind.HARDLINK}:
                    self.kept_files.add(parts)
                self._note("info", f"kept the existing {'/'.join(parts)}")
                return
            if self.options.policy is Policy.KEEP_BOTH:
                final = self._free_name(parts)
                self.report.renamed += 1
        if member.kind is MemberKind.HARDLINK and not link_source:
            if source_parts in self.kept_files:
                link_source = source_parts
            else:
                self.orphans.setdefault(source_parts, []).append((member, final))
                return
        self._progress(member.name)
        if self.options.dry_run:
            self._count(member, parts, final)
            return
        if member.kind is MemberKind.SYMLINK:
            self.target.make_symlink(final, member.link)
            self.made_links.append((final, member.name))
        elif member.kind is MemberKind.HARDLINK:
            self.target.make_hardlink(final, link_source)
        else:
            if opener is None:
                raise Refused("its data cannot be read")
            self._write(final, member, opener, member.name)
        self._count(member, parts, final)
        if final != parts:
            self._note("info", f"{'/'.join(parts)} exists; restored as {final[-1]}")

    def _write(self, final: tuple[str, ...], member: Member, opener: Opener, current: str) -> None:
        """Write `member`'s bytes (checked against the manifest) at `final`."""
        with opener() as data:
            self.target.write_file(
                final,
                self._bounded(member, data),
                member.mode,
                member.mtime,
                self._written_bytes(current),
            )

    def _bounded(self, member: Member, data: IO[bytes]) -> IO[bytes]:
        """`data`, once the member's size is checked against the manifest's.

        A tar.gz of 1 MiB can declare and hold 1 GiB of zeros; the manifest Mackuper
        wrote says what each file really was, so a member larger than that is not
        the backup the person chose: RestoreError stops the restore before any of
        it is written. The readers (tarfile, zipfile) never return more bytes than
        the member's header declares. A file the manifest does not list is Refused.
        """
        declared = self.options.declared_sizes
        if declared is None:
            return data
        limit = declared.get(member.name)
        if limit is None:
            raise Refused("it is not in this backup's manifest")
        if member.size > limit:
            raise RestoreError(_grew(member.name, limit))
        return data

    def _written_bytes(self, current: str) -> Any:
        def on_bytes(count: int) -> None:
            self.report.bytes += count
            self._progress(current)

        return on_bytes

    def _count(self, member: Member, parts: tuple[str, ...], final: tuple[str, ...]) -> None:
        """Count `member`, whose name is `parts`, restored at `final`."""
        if member.kind is MemberKind.FILE:
            self.report.files += 1
            self.restored_files[parts] = final
            if self.options.dry_run:
                self.report.bytes += member.size
        else:
            self.report.links += 1
            if member.kind is MemberKind.HARDLINK:
                self.restored_files[parts] = final
        self._sample(final)

    def _sample(self, final: tuple[str, ...]) -> None:
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


def resolve_link(target: Target, parts: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where the symbolic link at `parts` leads inside the target, following the links
    on disk as the kernel would; None when it leads outside or is absolute.

    A name that does not exist (a dangling link) is followed as plain names, and a
    loop ends after MAX_LINK_HOPS where it is: the kernel cannot open either, so
    both stay (as tar keeps them).
    """
    current: list[str] = list(parts[:-1])
    text = target.read_link(parts)
    if text.startswith("/"):
        return None
    pending = list(reversed(text.split("/")))
    hops = 0
    while pending:
        part = pending.pop()
        if part in {"", "."}:
            continue
        if part == "..":
            if not current:
                return None
            current.pop()
            continue
        current.append(part)
        try:
            kind = target.existing(tuple(current))
        except Refused:  # a file where a folder would be: the kernel stops here too
            return tuple(current)
        if kind != Existing.SYMLINK:
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            return tuple(current)
        text = target.read_link(tuple(current))
        current.pop()
        if text.startswith("/"):
            return None
        pending.extend(reversed(text.split("/")))
    return tuple(current)
