"""Remote files over SFTP (paramiko): a sorted walk, pipelined reads, files in flight.

Reads of one file are pipelined in windows (many 32 KiB requests outstanding, memory
bounded by the window); the next few small files are opened and prefetched while
the current one is written, so a tree of small files is not one round trip each.
SFTP v3 has no inode numbers: hard links arrive as separate files.
"""

from __future__ import annotations

import contextlib
import errno
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import BinaryIO

import paramiko

from mackuper.core.globs import is_excluded
from mackuper.sources.base import Entry, EntryType, Reporter
from mackuper.sources.ssh_connect import SSHError, SSHTarget, connect, open_sftp

WINDOW = 8 << 20
REQUEST = 32768
SMALL_FILE = 1 << 20
LOOKAHEAD = 16


def _oserror(error: OSError | paramiko.SSHException | EOFError) -> OSError:
    if isinstance(error, OSError):
        return error
    return OSError(errno.EIO, str(error))


def _check_lost(
    sftp: paramiko.SFTPClient, error: OSError | paramiko.SSHException | EOFError
) -> None:
    """Raise SSHError when `error` means the connection is gone, not one bad file."""
    channel = sftp.get_channel()
    transport = channel.get_transport() if channel is not None else None
    gone = channel is None or channel.closed or transport is None or not transport.is_active()
    if gone or isinstance(error, TimeoutError | paramiko.SSHException | EOFError):
        raise SSHError("the SSH connection was lost during the transfer") from None


class _RemoteFile:
    """One remote file: opened (and for small files prefetched) ahead of its turn."""

    def __init__(self, sftp: paramiko.SFTPClient, path: str, size: int) -> None:
        self.sftp = sftp
        self.path = path
        self.size = size
        self.handle: paramiko.SFTPFile | None = None
        self.error: OSError | None = None

    def start(self) -> None:
        if self.handle is not None or self.error is not None:
            return
        try:
            self.handle = self.sftp.open(self.path, "rb")
            if self.size <= SMALL_FILE:
                self.handle.prefetch(self.size)
        except (OSError, paramiko.SSHException, EOFError) as error:
            _check_lost(self.sftp, error)
            self.error = _oserror(error)

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
            with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                self.handle.close()
            self.handle = None


class _Reader:
    def __init__(self, remote: _RemoteFile) -> None:
        if remote.handle is None:
            raise OSError(errno.EIO, "the remote file was not opened")
        self.remote = remote
        self.handle = remote.handle
        self.offset = 0
        self.pending = b""
        self.chunks: Iterator[bytes] = iter(())
        self.prefetched = remote.size <= SMALL_FILE

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
        try:
            data = self.pending or self._next_chunk()
        except (OSError, paramiko.SSHException, EOFError) as error:
            _check_lost(self.remote.sftp, error)
            raise _oserror(error) from None
        if 0 <= size < len(data):
            self.pending = data[size:]
            return data[:size]
        self.pending = b""
        return data

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
        self.transport: paramiko.Transport | None = None
        self.started: list[_RemoteFile] = []

    def entries(self, reporter: Reporter) -> Iterator[Entry]:
        self.transport = connect(self.target)
        sftp = open_sftp(self.transport, self.target)
        pending: deque[tuple[Entry, _RemoteFile | None]] = deque()
        walker = self._walk_all(sftp, reporter)
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
        self, sftp: paramiko.SFTPClient, reporter: Reporter
    ) -> Iterator[tuple[Entry, _RemoteFile | None]]:
        for root in self.paths:
            try:
                info = sftp.lstat(root)
            except FileNotFoundError:
                raise SSHError(f"remote path {root} does not exist") from None
            except PermissionError:
                raise SSHError(f"remote path {root} is not readable (permission denied)") from None
            except (OSError, paramiko.SSHException, EOFError) as error:
                raise SSHError(f"cannot read remote path {root}: {error}") from None
            self._check_readable(sftp, root, info)
            yield from self._walk(sftp, root, root, info, reporter)

    def _check_readable(
        self, sftp: paramiko.SFTPClient, root: str, info: paramiko.SFTPAttributes
    ) -> None:
        """Fail on a root path that cannot be read at all, as tar mode does."""
        try:
            if stat.S_ISDIR(info.st_mode or 0):
                sftp.listdir(root)
            elif stat.S_ISREG(info.st_mode or 0):
                sftp.open(root, "rb").close()
        except PermissionError:
            raise SSHError(f"remote path {root} is not readable (permission denied)") from None
        except (OSError, paramiko.SSHException, EOFError) as error:
            _check_lost(sftp, error)

    def _walk(
        self,
        sftp: paramiko.SFTPClient,
        root: str,
        path: str,
        info: paramiko.SFTPAttributes,
        reporter: Reporter,
    ) -> Iterator[tuple[Entry, _RemoteFile | None]]:
        relative = path[len(root) :].lstrip("/") if path != root else ""
        if relative and is_excluded(relative, self.excludes):
            return
        mode = info.st_mode or 0
        item = self._entry(sftp, path, info, reporter)
        if item is not None:
            yield item
        if not stat.S_ISDIR(mode):
            return
        try:
            children = sorted(sftp.listdir_attr(path), key=lambda child: child.filename)
        except (OSError, paramiko.SSHException, EOFError) as error:
            _check_lost(sftp, error)
            reporter.problem(f"{self.target.host}: cannot list {path}: {_oserror(error).strerror}")
            return
        for child in children:
            yield from self._walk(
                sftp, root, f"{path.rstrip('/')}/{child.filename}", child, reporter
            )

    def _entry(
        self,
        sftp: paramiko.SFTPClient,
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
                target = sftp.readlink(path) or ""
            except (OSError, paramiko.SSHException, EOFError) as error:
                reporter.problem(f"{self.target.host}: cannot read link {path}: {error}")
                return None
            return replace(base, type=EntryType.SYMLINK, link_target=target), None
        if stat.S_ISREG(mode):
            remote = _RemoteFile(sftp, path, info.st_size or 0)
            entry = replace(base, type=EntryType.FILE, size=remote.size, open=remote.open)
            return entry, remote
        reporter.note(f"skipped {path}: sockets, fifos and devices are not backed up")
        return None

    def close(self) -> None:
        for remote in self.started:
            remote.close()
        self.started = []
        if self.transport is not None:
            self.transport.close()
            self.transport = None
