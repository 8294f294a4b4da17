"""What every source yields, and the errors a source may raise."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol


class EntryType(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"


@dataclass
class Entry:
    """One thing to put in the archive.

    `name` is the archive member name (relative, slash separated); `open` returns
    the bytes of a regular file, read as the archive is written.
    """

    name: str
    type: EntryType
    size: int
    mode: int
    mtime: float
    uid: int = 0
    gid: int = 0
    link_target: str = ""
    open: Callable[[], BinaryIO] | None = None


class SourceError(Exception):
    """The source cannot be read."""

    retryable = False


class SourceProblem(Exception):
    """One entry could not be read; the backup goes on and ends as `warning`."""


class Reporter(Protocol):
    def problem(self, message: str) -> None:
        """An entry could not be read: logged, and the run ends as `warning`."""
        ...

    def note(self, message: str) -> None:
        """Something worth a log line that is not a problem (a skipped socket)."""
        ...


class Source(Protocol):
    def describe(self) -> str:
        """A one-line description for logs and the manifest (never a secret)."""
        ...

    def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
        """Entries in archive order; unreadable ones are reported, not raised."""
        ...

    def close(self) -> None: ...
