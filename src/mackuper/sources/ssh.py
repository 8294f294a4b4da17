"""Files on a remote host over SSH: a remote `tar` stream when possible, else SFTP.

`transfer` is "auto" (tar when the OpenSSH client is here and the server has GNU
tar, else SFTP), "tar" or "sftp". Either way the host key must match the pinned
one before any credential is sent, and nothing is staged on local disk.

A job making incremental chains sets `snapshot` (core/snar.py) before the run: the
remote GNU tar then decides what changed, and `new_snapshot` holds its rewritten
snapshot after a run that ended well. That needs tar mode: SFTP makes full backups.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mackuper.core.globs import is_excluded
from mackuper.core.snar import dumpdir_entries, dumpdir_of
from mackuper.sources.base import Entry, Reporter
from mackuper.sources.ssh_tar import NoRemoteTar, TarStream, openssh_available
from mackuper.ssh import SSHError, SSHTarget

if TYPE_CHECKING:  # the SFTP mode (paramiko) is loaded by the job that uses it
    from mackuper.sources.ssh_sftp import SFTPWalk

TRANSFER_MODES = ("auto", "tar", "sftp")
INCREMENTAL_NEEDS_TAR = (
    "incremental backups of an SSH source need GNU tar on the server and tar transfer;"
    " make full backups, or install GNU tar there"
)


class SSHSource:
    def __init__(
        self,
        target: SSHTarget,
        paths: Sequence[str],
        excludes: Sequence[str] = (),
        transfer: str = "auto",
    ) -> None:
        if not paths:
            raise SSHError("no remote path is set")
        if transfer not in TRANSFER_MODES:
            raise SSHError(f"unknown transfer mode {transfer!r}")
        self.target = target
        self.paths = [path.rstrip("/") or "/" for path in paths]
        self.excludes = list(excludes)
        self.transfer = transfer
        self.stream: TarStream | SFTPWalk | None = None
        self.snapshot: bytes | None = None
        """GNU tar's snapshot to start from (b"" for a chain's full); None: no chain."""
        self.new_snapshot: bytes | None = None

    @classmethod
    def from_config(
        cls, config: dict[str, Any], secrets: dict[str, Any], retry_seconds: float = 0.0
    ) -> SSHSource:
        return cls(
            SSHTarget.from_config(config, secrets, retry_seconds),
            config.get("paths", []),
            config.get("excludes", []),
            str(config.get("transfer") or "auto"),
        )

    def describe(self) -> str:
        return f"ssh: {self.target.address} " + ", ".join(self.paths)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
        if self.snapshot is not None:
            yield from self._incremental(reporter)
            return
        if self.transfer == "tar" or (self.transfer == "auto" and openssh_available()):
            stream = TarStream(self.target, self.paths)
            self.stream = stream
            yielded = False
            try:
                for entry in self._filtered(stream.entries(reporter)):
                    yielded = True
                    yield entry
                return
            except NoRemoteTar as error:
                if self.transfer == "tar" or yielded:
                    raise
                reporter.note(f"remote tar unavailable ({error}); reading files over SFTP")
                self.close()
        elif self.transfer == "auto":
            reporter.note("the OpenSSH client is not installed; reading files over SFTP")
        from mackuper.sources.ssh_sftp import SFTPWalk

        walk = SFTPWalk(self.target, self.paths, self.excludes)
        self.stream = walk
        yield from walk.entries(reporter)

    def _incremental(self, reporter: Reporter) -> Iterator[Entry]:
        """The remote GNU tar's incremental stream, or SSHError saying why there is none."""
        if self.transfer == "sftp" or not openssh_available():
            why = "SFTP transfer" if self.transfer == "sftp" else "no OpenSSH client here"
            raise SSHError(f"{INCREMENTAL_NEEDS_TAR} ({why})")
        stream = TarStream(self.target, self.paths, self.snapshot)
        self.stream = stream
        try:
            yield from self._filtered(stream.entries(reporter))
        except NoRemoteTar as error:
            raise SSHError(f"{INCREMENTAL_NEEDS_TAR}: {error}") from None
        self.new_snapshot = stream.new_snapshot

    def _filtered(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        """Apply excludes to tar members (relative to their root); skip excluded dirs whole."""
        if not self.excludes:
            yield from entries
            return
        roots = sorted((path.lstrip("/") for path in self.paths), key=len, reverse=True)
        # Excluded directories, whole: an incremental stream sends every directory
        # before the files, so their contents come anywhere after them.
        skipped: set[str] = set()
        for entry in entries:
            if skipped and _under(entry.name, skipped):
                continue
            root = next((r for r in roots if entry.name == r or entry.name.startswith(r + "/")), "")
            relative = entry.name[len(root) :].lstrip("/") if root else entry.name
            if relative and is_excluded(relative, self.excludes):
                skipped.add(entry.name)
                continue
            if entry.dumpdir is not None:
                # What is excluded is not in the archive, so not in its directory's list.
                entry.dumpdir = dumpdir_of(
                    [
                        (letter, name)
                        for letter, name in dumpdir_entries(entry.dumpdir)
                        if letter not in "YND"
                        or not is_excluded(f"{relative}/{name}".lstrip("/"), self.excludes)
                    ]
                )
            yield entry


def _under(name: str, directories: set[str]) -> bool:
    """Whether `name` is inside one of `directories` (member names)."""
    position = name.find("/")
    while position != -1:
        if name[:position] in directories:
            return True
        position = name.find("/", position + 1)
    return False
