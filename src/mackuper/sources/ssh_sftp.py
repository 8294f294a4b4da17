"""Remote files over SFTP (paramiko): a sorted walk, pipelined reads, files in flight.

Reads of one file are pipelined in windows (many 32 KiB requests outstanding, memory
bounded by the window); the next few small files are opened and prefetched while
the current one is written, so a tree of small files is not one round trip each.
SFTP v3 has no inode numbers: hard links arrive as separate files.

A connection that breaks mid-run is made again (`_Link`), with backoff, for up to
the target's `retry_seconds`: every request is idempotent (stat, list, readlink,
open) and a file's reads resume at the byte where they stopped, so the archive is
the same as without the outage. Only a file whose size or mtime changed meanwhile
is reported. A host key that changed or a login refused on reconnecting fails at
once, as on the first connection.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import stat
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import BinaryIO, TypeVar

import paramiko

from mackuper.core.globs import is_excluded
from mackuper.core.outage import Outage
from mackuper.sources.base import Entry, EntryType, Reporter
from mackuper.ssh import SSHError, SSHTarget, SSHUnreachable, connect, open_sftp

logger = logging.getLogger(__name__)
T = TypeVar("T")
_SFTP_ERRORS = (OSError, paramiko.SSHException, EOFError)

WINDOW = 8 << 20
REQUEST = 32768
SMALL_FILE = 1 << 20
LOOKAHEAD = 16


def _oserror(error: OSError | paramiko.SSHException | EOFError) -> OSError:
    if isinstance(error, OSError):
        return error
    return OSError(errno.EIO, str(error))


def _lstat(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes:
    return sftp.lstat(path)


def _gone(sftp: paramiko.SFTPClient) -> bool:
    """Whether the SFTP session's channel or connection is closed."""
    channel = sftp.get_channel()
    transport = channel.get_transport() if channel is not None else None
    return channel is None or channel.closed or transport is None or not transport.is_active()


def _is_lost(sftp: paramiko.SFTPClient, error: OSError | paramiko.SSHException | EOFError) -> bool:
    """Whether `error` means the connection is gone, not one bad file."""
    return _gone(sftp) or isinstance(error, TimeoutError | paramiko.SSHException | EOFError)


class _Link:
    """The SFTP session of one run, made again when the connection breaks."""

    def __init__(self, target: SSHTarget) -> None:
        self.target = target
        self.transport: paramiko.Transport | None = None
        self.sftp = self._open()
        self.reconnects = 0

    def _open(self) -> paramiko.SFTPClient:
        transport = connect(self.target)
        try:
            sftp = open_sftp(transport, self.target)
        except BaseException:
            transport.close()
            raise
        self.transport = transport
        return sftp

    def call(self, request: Callable[[paramiko.SFTPClient], T]) -> T:
        """`request(sftp)`, made again on a new connection when this one broke.

        Errors about the file itself (missing, permission denied) are raised as they
        are; SSHError once the connection cannot be made again within the budget.
        """
        outage: Outage | None = None
        while True:
            sftp = self.sftp
            try:
                return request(sftp)
            except _SFTP_ERRORS as error:
                if not _is_lost(sftp, error):
                    raise
                outage = outage or Outage(self.target.retry_seconds)
                self.recover(sftp, outage)

    def recover(self, broken: paramiko.SFTPClient, outage: Outage) -> None:
        """Make a new connection unless one was made since `broken` failed; raises
        SSHError when it cannot be made within the budget (or cannot be used at all)."""
        if self.sftp is not broken:
            return
        self.close()
        while True:
            if not outage.pause():
                raise SSHError(
                    f"the SSH connection to {self.target.host}:{self.target.port} was lost"
                    f" and could not be made again within {self.target.retry_seconds:.0f} s"
                )
            try:
                self.sftp = self._open()
            except SSHUnreachable as error:
                logger.warning("reconnecting to %s: %s", self.target.host, error)
                continue
            self.reconnects += 1
            logger.warning("reconnected to %s after a lost connection", self.target.host)
            return

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class _RemoteFile:
    """One remote file: opened (and for small files prefetched) ahead of its turn."""

    def __init__(self, link: _Link, path: str, size: int, mtime: float = 0.0) -> None:
        self.link = link
        self.path = path
        self.size = size
        self.mtime = mtime
        self.handle: paramiko.SFTPFile | None = None
        self.sftp: paramiko.SFTPClient | None = None
        """The session `handle` belongs to: a new one after a reconnect needs a new handle."""
        self.error: OSError | None = None

    def start(self) -> None:
        if self.handle is not None or self.error is not None:
            return
        try:
            self.handle, self.sftp = self.link.call(self._open)
            if self.size <= SMALL_FILE:
                self.handle.prefetch(self.size)
        except _SFTP_ERRORS as error:
            self.error = _oserror(error)

    def _open(self, sftp: paramiko.SFTPClient) -> tuple[paramiko.SFTPFile, paramiko.SFTPClient]:
        return sftp.open(self.path, "rb"), sftp

    def reopen(self, offset: int) -> paramiko.SFTPFile:
        """A new handle at `offset` after the connection broke; OSError when the file
        changed meanwhile (its bytes would no longer fit those already read)."""
        self.handle = None
        info = self.link.call(lambda sftp: sftp.stat(self.path))
        if (info.st_size or 0) != self.size or float(info.st_mtime or 0) != self.mtime:
            raise OSError(errno.EIO, "it changed while the connection was made again")
        self.handle, self.sftp = self.link.call(self._open)
        self.handle.seek(offset)
        return self.handle

    def open(self) -> BinaryIO:
        self.start()
        if self.error is not None:
            raise self.error
        if self.handle is None:
            raise OSError(errno.EIO, "the remote file was not opened")
        return _Reader(self)  # type: ignore[return-value]

    def close(self) -> None:
        if self.handle is not None:
            # The connection may already be gone; the run reports that elsewhere.
            with contextlib.suppress(*_SFTP_ERRORS):
                self.handle.close()
            self.handle = None


class _Reader:
    def __init__(self, remote: _RemoteFile) -> None:
        if remote.handle is None:
            raise OSError(errno.EIO, "the remote file was not opened")
        self.remote = remote
        self.handle = remote.handle
        self.offset = 0
        self.delivered = 0
        self.pending = b""
        self.chunks: Iterator[bytes] = iter(())
        self.prefetched = remote.size <= SMALL_FILE
        self.outage: Outage | None = None

    def _next_chunk(self) -> bytes:
        if self.prefetched:
            return self.handle.read(REQUEST * 32)
        for data in self.chunks:
            return data
        if self.offset >= self.remote.size:
            return self.handle.read(REQUEST)  # past the announced size: did it grow?
        end = min(self.offset + WINDOW, self.remote.size)
        ranges = [(start, min(REQUEST, end - start)) for start in range(self.offset, end, REQUEST)]
        self.chunks = iter(self.handle.readv(ranges))
        self.offset = end
        for data in self.chunks:
            return data
        return b""

    def read(self, size: int = -1) -> bytes:
        while True:
            broken = self.remote.sftp
            try:
                data = self.pending or self._next_chunk()
            except _SFTP_ERRORS as error:
                if broken is None or not _is_lost(broken, error):
                    raise _oserror(error) from None
                self._resume(broken)
                continue
            # A read cut short by a dropped connection can end quietly (paramiko's
            # pipelined reads stop when the channel closes): that is not the file's end.
            if data or self.delivered >= self.remote.size or broken is None or not _gone(broken):
                break
            self._resume(broken)
        self.outage = None
        if 0 <= size < len(data):
            self.pending = data[size:]
            data = data[:size]
        else:
            self.pending = b""
        self.delivered += len(data)
        return data

    def _resume(self, broken: paramiko.SFTPClient) -> None:
        """Go on reading at the first byte not yet delivered, over a new connection."""
        self.outage = self.outage or Outage(self.remote.link.target.retry_seconds)
        self.remote.link.recover(broken, self.outage)
        try:
            self.handle = self.remote.reopen(self.delivered)
        except paramiko.SSHException as error:
            raise _oserror(error) from None
        self.offset = self.delivered
        self.pending = b""
        self.chunks = iter(())
        self.prefetched = False

    def readinto(self, buffer: memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.remote.close()


class SFTPWalk:
    def __init__(self, target: SSHTarget, paths: Sequence[str], excludes: Sequence[str]) -> None:
        self.target = target
        self.paths = list(paths)
        self.excludes = list(excludes)
        self.link: _Link | None = None
        self.started: list[_RemoteFile] = []

    def entries(self, reporter: Reporter) -> Iterator[Entry]:
        self.link = link = _Link(self.target)
        pending: deque[tuple[Entry, _RemoteFile | None]] = deque()
        walker = self._walk_all(link, reporter)
        while True:
            while len(pending) < LOOKAHEAD:
                item = next(walker, None)
                if item is None:
                    break
                pending.append(item)
            if not pending:
                return
            for _entry, remote in list(pending)[1:]:
                if remote is not None and remote.size <= SMALL_FILE and remote.handle is None:
                    remote.start()
                    self.started.append(remote)
            self.started = [remote for remote in self.started if remote.handle is not None]
            entry, _remote = pending.popleft()
            yield entry

    def _walk_all(
        self, link: _Link, reporter: Reporter
    ) -> Iterator[tuple[Entry, _RemoteFile | None]]:
        for root in self.paths:
            try:
                info = link.call(partial(_lstat, path=root))
            except FileNotFoundError:
                raise SSHError(f"remote path {root} does not exist") from None
            except PermissionError:
                raise SSHError(f"remote path {root} is not readable (permission denied)") from None
            except (OSError, paramiko.SSHException, EOFError) as error:
                raise SSHError(f"cannot read remote path {root}: {error}") from None
            self._check_readable(link, root, info)
            yield from self._walk(link, root, root, info, reporter)

    def _check_readable(self, link: _Link, root: str, info: paramiko.SFTPAttributes) -> None:
        """Fail on a root path that cannot be read at all, as tar mode does."""
        try:
            if stat.S_ISDIR(info.st_mode or 0):
                link.call(lambda sftp: sftp.listdir(root))
            elif stat.S_ISREG(info.st_mode or 0):
                link.call(lambda sftp: sftp.open(root, "rb").close())
        except PermissionError:
            raise SSHError(f"remote path {root} is not readable (permission denied)") from None
        except _SFTP_ERRORS:
            return  # the walk reports what it cannot read, entry by entry

    def _walk(
        self,
        link: _Link,
        root: str,
        path: str,
        info: paramiko.SFTPAttributes,
        reporter: Reporter,
    ) -> Iterator[tuple[Entry, _RemoteFile | None]]:
        relative = path[len(root) :].lstrip("/") if path != root else ""
        if relative and is_excluded(relative, self.excludes):
            return
        mode = info.st_mode or 0
        item = self._entry(link, path, info, reporter)
        if item is not None:
            yield item
        if not stat.S_ISDIR(mode):
            return
        try:
            listed = link.call(lambda sftp: sftp.listdir_attr(path))
        except _SFTP_ERRORS as error:
            reporter.problem(f"{self.target.host}: cannot list {path}: {_oserror(error).strerror}")
            return
        for child in sorted(listed, key=lambda child: child.filename):
            yield from self._walk(
                link, root, f"{path.rstrip('/')}/{child.filename}", child, reporter
            )

    def _entry(
        self,
        link: _Link,
        path: str,
        info: paramiko.SFTPAttributes,
        reporter: Reporter,
    ) -> tuple[Entry, _RemoteFile | None] | None:
        mode = info.st_mode or 0
        base = Entry(
            name=path.lstrip("/"),
            type=EntryType.DIRECTORY,
            size=0,
            mode=stat.S_IMODE(mode),
            mtime=float(info.st_mtime or 0),
            uid=info.st_uid or 0,
            gid=info.st_gid or 0,
        )
        if stat.S_ISDIR(mode):
            return base, None
        if stat.S_ISLNK(mode):
            try:
                target = link.call(lambda sftp: sftp.readlink(path)) or ""
            except _SFTP_ERRORS as error:
                reporter.problem(f"{self.target.host}: cannot read link {path}: {error}")
                return None
            return replace(base, type=EntryType.SYMLINK, link_target=target), None
        if stat.S_ISREG(mode):
            remote = _RemoteFile(link, path, info.st_size or 0, float(info.st_mtime or 0))
            entry = replace(base, type=EntryType.FILE, size=remote.size, open=remote.open)
            return entry, remote
        reporter.note(f"skipped {path}: sockets, fifos and devices are not backed up")
        return None

    def close(self) -> None:
        for remote in self.started:
            remote.close()
        self.started = []
        if self.link is not None:
            self.link.close()
            self.link = None
