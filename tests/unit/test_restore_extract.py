"""The extractor's decisions against an in-memory target behind the Target protocol.

Real archives into real local and SSH targets are in tests/integration
(test_restore_extract.py, test_restore_hostile.py); here: overwrite policies, dry
runs, selection, refusals that let the restore go on, hard links, full disks and
the cap on logged problems.
"""

from __future__ import annotations

import errno
import io
from collections.abc import Callable
from typing import IO

import pytest

from mackuper.restore.errors import Refused, RestoreError
from mackuper.restore.extract import (
    LOGGED_LINES_LIMIT,
    ExtractOptions,
    Extractor,
    ExtractReport,
    Policy,
)
from mackuper.restore.formats import Member, MemberKind, Opener
from mackuper.restore.targets import Existing

Parts = tuple[str, ...]


class MemoryTarget:
    """A directory tree in a dict: parts -> (kind, content)."""

    def __init__(self, failing: dict[str, int] | None = None) -> None:
        self.entries: dict[Parts, tuple[str, object]] = {}
        self.prepared = False
        self.failing = failing or {}  # file name -> errno raised when it is written

    def describe(self) -> str:
        return "memory"

    def prepare(self) -> None:
        self.prepared = True

    def existing(self, parts: Parts) -> str:
        for depth in range(1, len(parts)):
            if self.entries.get(parts[:depth], ("", None))[0] == Existing.SYMLINK:
                raise Refused(f"{parts[depth - 1]!r} on its path is a symbolic link")
        return self.entries.get(parts, (Existing.NONE, None))[0]

    def make_directory(self, parts: Parts, mode: int) -> None:
        self.entries[parts] = (Existing.DIRECTORY, mode)

    def write_file(
        self,
        parts: Parts,
        data: IO[bytes],
        mode: int,
        mtime: float,
        on_bytes: Callable[[int], None],
    ) -> int:
        if parts[-1] in self.failing:
            code = self.failing[parts[-1]]
            raise OSError(code, errno.errorcode[code])
        content = data.read()
        self.entries[parts] = (Existing.FILE, content)
        on_bytes(len(content))
        return len(content)

    def make_symlink(self, parts: Parts, link: str) -> None:
        self.entries[parts] = (Existing.SYMLINK, link)

    def make_hardlink(self, parts: Parts, existing: Parts) -> None:
        self.entries[parts] = (Existing.FILE, ("hardlink", existing))

    def read_link(self, parts: Parts) -> str:
        kind, link = self.entries[parts]
        assert kind == Existing.SYMLINK
        return str(link)

    def remove_link(self, parts: Parts) -> None:
        del self.entries[parts]

    def close(self) -> None:
        return None

    def files(self) -> dict[str, object]:
        return {
            "/".join(parts): content
            for parts, (kind, content) in self.entries.items()
            if kind == Existing.FILE
        }


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def log(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    def progress(
        self, *, bytes_read: int, bytes_written: int, files_done: int, current: str
    ) -> None:
        return None


def file(name: str, data: bytes = b"new") -> tuple[Member, Opener]:
    member = Member(name, MemberKind.FILE, len(data), 0o644, 0.0)
    return member, lambda: io.BytesIO(data)


def entry(name: str, kind: MemberKind, link: str = "", special: str = "") -> tuple[Member, None]:
    return Member(name, kind, 0, 0o755, 0.0, link=link, special=special), None


def extract(
    target: MemoryTarget,
    members: list[tuple[Member, Opener | None]],
    policy: Policy = Policy.SKIP,
    dry_run: bool = False,
    selection: list[Parts] | None = None,
) -> tuple[ExtractReport, Log]:
    log = Log()
    options = ExtractOptions(policy, dry_run, selection or [])
    return Extractor(target, options, log).run(iter(members)), log


def with_existing_report() -> MemoryTarget:
    target = MemoryTarget()
    target.entries[("docs",)] = (Existing.DIRECTORY, 0o755)
    target.entries[("docs", "report.txt")] = (Existing.FILE, b"old")
    return target


def test_skip_keeps_what_is_there() -> None:
    target = with_existing_report()
    report, log = extract(target, [file("docs/report.txt")], policy=Policy.SKIP)
    assert target.files() == {"docs/report.txt": b"old"}
    assert (report.skipped, report.files) == (1, 0)
    assert ("info", "kept the existing docs/report.txt") in log.lines


def test_overwrite_replaces_what_is_there() -> None:
    target = with_existing_report()
    report, _ = extract(target, [file("docs/report.txt")], policy=Policy.OVERWRITE)
    assert target.files() == {"docs/report.txt": b"new"}
    assert (report.files, report.bytes) == (1, 3)


def test_keep_both_restores_beside_under_the_first_free_name() -> None:
    target = with_existing_report()
    target.entries[("docs", "report (restored).txt")] = (Existing.FILE, b"earlier copy")
    report, log = extract(target, [file("docs/report.txt")], policy=Policy.KEEP_BOTH)
    assert target.files() == {
        "docs/report.txt": b"old",
        "docs/report (restored).txt": b"earlier copy",
        "docs/report (restored 2).txt": b"new",
    }
    assert report.renamed == 1
    assert ("info", "docs/report.txt exists; restored as report (restored 2).txt") in log.lines


def test_dry_run_writes_nothing_and_counts_what_would_be_written() -> None:
    target = with_existing_report()
    members = [
        entry("photos", MemberKind.DIRECTORY),
        file("photos/a.jpg", b"12345"),
        file("docs/report.txt"),
        entry("photos/latest", MemberKind.SYMLINK, link="a.jpg"),
    ]
    report, _ = extract(target, members, dry_run=True, policy=Policy.KEEP_BOTH)
    assert not target.prepared
    assert target.files() == {"docs/report.txt": b"old"}
    assert (report.directories, report.files, report.links, report.bytes) == (1, 2, 1, 8)
    assert report.sample == ["photos/a.jpg", "docs/report (restored).txt", "photos/latest"]


def test_only_selected_members_are_restored() -> None:
    target = MemoryTarget()
    members = [file("docs/a.txt"), file("docs2/b.txt"), file("photos/c.jpg")]
    report, _ = extract(target, members, selection=[("docs",), ("photos", "c.jpg")])
    assert sorted(target.files()) == ["docs/a.txt", "photos/c.jpg"]
    assert report.matched == 2


def test_a_selection_matching_nothing_fails_the_restore() -> None:
    with pytest.raises(RestoreError, match="none of the selected paths"):
        extract(MemoryTarget(), [file("docs/a.txt")], selection=[("missing",)])


def test_refused_members_are_logged_and_the_rest_is_restored() -> None:
    target = MemoryTarget()
    target.entries[("folder",)] = (Existing.DIRECTORY, 0o755)
    target.entries[("file",)] = (Existing.FILE, b"old")
    preset = Member("big-header", MemberKind.FILE, 0, 0o644, 0.0, refused="its header is huge")
    members: list[tuple[Member, Opener | None]] = [
        entry("null", MemberKind.SPECIAL, special="a character device"),
        entry("out", MemberKind.SYMLINK, link="../elsewhere"),
        file("folder"),  # a directory is in the way
        entry("file", MemberKind.DIRECTORY),  # a file is in the way
        (preset, None),
        entry("unreadable.txt", MemberKind.FILE),
        file("good.txt"),
    ]
    report, log = extract(target, members, policy=Policy.OVERWRITE)
    assert target.files() == {"file": b"old", "good.txt": b"new"}
    assert (report.refused, report.files) == (6, 1)
    # Sorted: links may be made (and judged) after everything else.
    assert sorted(message for level, message in log.lines if level == "warning") == sorted(
        [
            "refused 'null': it is a character device; those are never restored",
            "refused 'out': it is a symbolic link pointing outside the target (../elsewhere)",
            "refused 'folder': a directory with that name is in the way",
            "refused 'file': something that is not a directory is in the way",
            "refused 'big-header': its header is huge",
            "refused 'unreadable.txt': its data cannot be read",
        ]
    )


def test_a_hard_link_points_at_the_name_its_source_was_restored_under() -> None:
    target = with_existing_report()
    members = [
        file("docs/report.txt"),
        entry("docs/same.txt", MemberKind.HARDLINK, "docs/report.txt"),
    ]
    report, _ = extract(target, members, policy=Policy.KEEP_BOTH)
    assert target.files()["docs/same.txt"] == ("hardlink", ("docs", "report (restored).txt"))
    assert (report.files, report.links) == (1, 1)


def test_a_full_disk_stops_the_restore_but_other_write_errors_do_not() -> None:
    target = MemoryTarget(failing={"locked.txt": errno.EACCES, "big.bin": errno.ENOSPC})
    report, log = extract(target, [file("locked.txt"), file("after.txt")])
    assert report.failed == 1
    assert target.files() == {"after.txt": b"new"}
    assert log.lines[-1][0] == "error" and "could not restore 'locked.txt'" in log.lines[-1][1]
    with pytest.raises(RestoreError, match="the target cannot take more data"):
        extract(target, [file("big.bin"), file("never.txt")])
    assert "never.txt" not in target.files()


def test_problems_beyond_the_limit_are_counted_not_logged() -> None:
    members = [entry(f"../escape-{index}", MemberKind.FILE) for index in range(600)]
    report, log = extract(MemoryTarget(), members)
    assert report.refused == 600
    assert len(log.lines) == LOGGED_LINES_LIMIT + 1
    assert log.lines[-1] == ("warning", "more problems follow; only the counts are kept from here")
