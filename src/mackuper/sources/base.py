"""What every source yields, and the errors a source may raise."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple, Protocol


class EntryType(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"


@dataclass(frozen=True)
class Identity:
    """What incremental change detection compares (core/chain.py), from one lstat."""

    type: str
    """One of file (hard links too), directory, symlink."""
    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int
    nlink: int = 1
    """Not compared: tells incremental runs which names a later hard link may name."""

    def record(self) -> dict[str, int | str]:
        return {
            "type": self.type,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "ino": self.ino,
            "ctime_ns": self.ctime_ns,
        }


@dataclass(slots=True)
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
    identity: Identity | None = None
    """Set by sources that support incremental backups (local)."""
    listing: list[tuple[str, Identity]] | None = None
    """A directory's children (name, identity) as they will be yielded, from sources
    that support incremental backups."""
    dumpdir: bytes | None = None
    """GNU tar's list of a directory's contents in an incremental archive (core/chain.py)."""


class Command(NamedTuple):
    """How to run a dump tool: here, on an SSH host (sources/remote.py `command_on`) or
    in a container (sources/engine_exec.py `command_in`)."""

    argv: list[str]
    env: dict[str, str]
    """Added to the worker's environment."""
    feed: bytes | None = None
    """Settings and passwords for the tool's standard input, read before it starts."""
    preamble: bool = False
    """It runs behind an SSH login shell: its output and standard error count from the
    marks the remote command says first (mackuper/ssh.py SAY_STARTS)."""


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
