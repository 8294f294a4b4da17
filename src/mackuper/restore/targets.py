"""Where a restore writes: a local directory or a directory on an SSH host.

Both refuse to follow symbolic links while writing: a local target walks the
path one directory descriptor at a time with O_NOFOLLOW, an SSH target checks
every parent with lstat. Files are written to a hidden temporary name and
renamed into place, so a cancelled restore leaves no half-written file, and
replacing a symbolic link replaces the link, never what it points to.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections import OrderedDict
from typing import IO, TYPE_CHECKING, Protocol, cast

from mackuper.restore.errors import Refused, TargetError

if TYPE_CHECKING:  # paramiko is loaded by the SFTP code that makes the session
    import paramiko

CHUNK = 1 << 20
KEPT_FOLDERS = 64
"""Folder descriptors a local target keeps open between members."""


class Existing:
    NONE = "none"
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"


def _kind_of_mode(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return Existing.SYMLINK
    if stat.S_ISDIR(mode):
        return Existing.DIRECTORY
    if stat.S_ISREG(mode):
        return Existing.FILE
    return Existing.OTHER


def _temporary_name(name: str) -> str:
    return f".{name[:200]}.mackuper-{secrets.token_hex(4)}"


class Target(Protocol):
    def describe(self) -> str: ...

    def prepare(self) -> None:
        """Create the root directory; raises TargetError when that is impossible."""
        ...

    def existing(self, parts: tuple[str, ...]) -> str:
        """What is at `parts` now (an Existing value); Refused if a parent is a link."""
        ...

    def make_directory(self, parts: tuple[str, ...], mode: int) -> None: ...

    def write_file(
        self, parts: tuple[str, ...], data: IO[bytes], mode: int, mtime: float, on_bytes: _OnBytes
    ) -> int:
        """Write a file (replacing what is there); returns the bytes written."""
        ...

    def make_symlink(self, parts: tuple[str, ...], link: str) -> None: ...

    def make_hardlink(self, parts: tuple[str, ...], existing: tuple[str, ...]) -> None:
        """A second name for the regular file at `existing` (inside the target); Refused
        when `existing` is anything else (a link, a folder, a device, missing)."""
        ...

    def read_link(self, parts: tuple[str, ...]) -> str:
        """The text of the symbolic link at `parts` (whose parents are real folders)."""
        ...

    def remove_link(self, parts: tuple[str, ...]) -> None:
        """Remove the symbolic link at `parts`; anything else there is left alone."""
        ...

    def close(self) -> None: ...


class _OnBytes(Protocol):
    def __call__(self, count: int) -> None: ...


class LocalTarget:
    """A directory on the Mackuper host."""

    def __init__(self, root: str) -> None:
        if not root or not os.path.isabs(root):
            raise TargetError("the restore directory must be an absolute path")
        self.root = os.path.normpath(root)
        self.folders: OrderedDict[tuple[str, ...], int] = OrderedDict()
        """Descriptors of folders opened on the way to earlier members, newest last.

        Members come in archive order, folder by folder: opening every folder from
        the root again for each member took 342,813 opens to restore the 20,000
        small files of the bench corpus, 20,214 with these kept (cProfile of
        `open_members` + `Extractor`, docs/benchmarks.md). A kept descriptor stays
        the folder it was opened as, never a link: a restore never removes or
        renames a folder, and writes nothing through a link.
        """

    def describe(self) -> str:
        return f"local directory {self.root}"

    def prepare(self) -> None:
        try:
            os.makedirs(self.root, exist_ok=True)
            if not os.path.isdir(self.root):
                raise TargetError(f"{self.root} is not a directory")
        except OSError as error:
            raise TargetError(f"cannot create {self.root}: {error.strerror}") from None

    def _parent(self, parts: tuple[str, ...], create: bool) -> int:
        """A descriptor of the directory holding `parts`, never through a link; the
        caller closes it."""
        folder = parts[:-1]
        depth = len(folder)
        while depth and folder[:depth] not in self.folders:
            depth -= 1
        if depth:
            self.folders.move_to_end(folder[:depth])
            descriptor = os.dup(self.folders[folder[:depth]])
        else:
            descriptor = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for index in range(depth, len(folder)):
                part = folder[index]
                try:
                    child = os.open(
                        part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor
                    )
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=descriptor)
                    child = os.open(
                        part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor
                    )
                except OSError as error:
                    if error.errno in {errno.ELOOP, errno.ENOTDIR}:
                        raise Refused(
                            f"{part!r} on its path is a symbolic link or not a directory"
                        ) from None
                    raise
                os.close(descriptor)
                descriptor = child
                self._keep(folder[: index + 1], descriptor)
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor

    def _borrowed_parent(self, parts: tuple[str, ...], create: bool) -> tuple[int, bool]:
        """(descriptor of the directory holding `parts`, True when the caller must close it).

        The kept descriptor of that very folder is lent as it is, without the `dup` and
        `close` of `_parent` (four system calls for each file of a restore); the
        borrower uses it before anything else opens a folder, so before it can be
        closed to keep the number of kept ones bounded.
        """
        folder = parts[:-1]
        kept = self.folders.get(folder) if folder else None
        if kept is not None:
            self.folders.move_to_end(folder)
            return kept, False
        return self._parent(parts, create), True

    def _keep(self, folder: tuple[str, ...], descriptor: int) -> None:
        self.folders[folder] = os.dup(descriptor)
        while len(self.folders) > KEPT_FOLDERS:
            os.close(self.folders.popitem(last=False)[1])

    def existing(self, parts: tuple[str, ...]) -> str:
        try:
            descriptor, owned = self._borrowed_parent(parts, create=False)
        except FileNotFoundError:
            return Existing.NONE
        try:
            return _kind_of_mode(
                os.stat(parts[-1], dir_fd=descriptor, follow_symlinks=False).st_mode
            )
        except FileNotFoundError:
            return Existing.NONE
        finally:
            if owned:
                os.close(descriptor)

    def make_directory(self, parts: tuple[str, ...], mode: int) -> None:
        descriptor = self._parent(parts, create=True)
        try:
            os.mkdir(parts[-1], (mode & 0o777) | 0o700, dir_fd=descriptor)
        except FileExistsError:
            kind = _kind_of_mode(
                os.stat(parts[-1], dir_fd=descriptor, follow_symlinks=False).st_mode
            )
            if kind != Existing.DIRECTORY:
                raise Refused("something that is not a directory is in the way") from None
        finally:
            os.close(descriptor)

    def write_file(
        self, parts: tuple[str, ...], data: IO[bytes], mode: int, mtime: float, on_bytes: _OnBytes
    ) -> int:
        descriptor, owned = self._borrowed_parent(parts, create=True)
        temporary = _temporary_name(parts[-1])
        written = 0
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            handle = os.open(temporary, flags, 0o600, dir_fd=descriptor)
            try:
                # Straight to the descriptor: a buffered file object costs three more
                # system calls per file and a copy, for files mostly written in one go.
                while chunk := data.read(CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(handle, view) :]
                    written += len(chunk)
                    on_bytes(len(chunk))
                os.fchmod(handle, mode & 0o777)
                os.utime(handle, (mtime, mtime))
            finally:
                os.close(handle)
            os.rename(temporary, parts[-1], src_dir_fd=descriptor, dst_dir_fd=descriptor)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=descriptor)
            raise
        finally:
            if owned:
                os.close(descriptor)
        return written

    def make_symlink(self, parts: tuple[str, ...], link: str) -> None:
        descriptor = self._parent(parts, create=True)
        temporary = _temporary_name(parts[-1])
        try:
            os.symlink(link, temporary, dir_fd=descriptor)
            os.rename(temporary, parts[-1], src_dir_fd=descriptor, dst_dir_fd=descriptor)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=descriptor)
            raise
        finally:
            os.close(descriptor)

    def make_hardlink(self, parts: tuple[str, ...], existing: tuple[str, ...]) -> None:
        source = self._parent(existing, create=False)
        try:
            kind = _kind_of_mode(
                os.stat(existing[-1], dir_fd=source, follow_symlinks=False).st_mode
            )
        except FileNotFoundError:
            kind = Existing.NONE
        if kind != Existing.FILE:
            os.close(source)
            raise Refused(f"its hard link source {'/'.join(existing)} is not a regular file here")
        descriptor = self._parent(parts, create=True)
        temporary = _temporary_name(parts[-1])
        try:
            os.link(
                existing[-1],
                temporary,
                src_dir_fd=source,
                dst_dir_fd=descriptor,
                follow_symlinks=False,
            )
            os.rename(temporary, parts[-1], src_dir_fd=descriptor, dst_dir_fd=descriptor)
        finally:
            os.close(source)
            os.close(descriptor)

    def read_link(self, parts: tuple[str, ...]) -> str:
        descriptor = self._parent(parts, create=False)
        try:
            return os.readlink(parts[-1], dir_fd=descriptor)
        finally:
            os.close(descriptor)

    def remove_link(self, parts: tuple[str, ...]) -> None:
        descriptor = self._parent(parts, create=False)
        try:
            info = os.stat(parts[-1], dir_fd=descriptor, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                os.unlink(parts[-1], dir_fd=descriptor)
        finally:
            os.close(descriptor)

    def close(self) -> None:
        while self.folders:
            os.close(self.folders.popitem()[1])


class SftpTarget:
    """A directory on an SSH host, written over SFTP."""

    def __init__(
        self, transport: paramiko.Transport | None, sftp: paramiko.SFTPClient, root: str, label: str
    ) -> None:
        if not root.startswith("/"):
            raise TargetError("the restore directory on the SSH host must be an absolute path")
        self.transport = transport
        self.sftp = sftp
        self.root = "/" + "/".join(part for part in root.split("/") if part)
        self.label = label
        self.checked: set[tuple[str, ...]] = set()

    def describe(self) -> str:
        return f"{self.root} on {self.label}"

    def _path(self, parts: tuple[str, ...]) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def _lstat_kind(self, path: str) -> str:
        try:
            attributes = self.sftp.lstat(path)
        except FileNotFoundError:
            return Existing.NONE
        except OSError as error:
            if error.errno == errno.ENOENT:
                return Existing.NONE
            raise
        return _kind_of_mode(attributes.st_mode or 0)

    def prepare(self) -> None:
        built = ""
        for part in [part for part in self.root.split("/") if part]:
            built += "/" + part
            kind = self._lstat_kind(built)
            if kind == Existing.NONE:
                try:
                    self.sftp.mkdir(built, 0o755)
                except OSError as error:
                    raise TargetError(f"cannot create {built} on {self.label}: {error}") from None
            elif kind not in {Existing.DIRECTORY, Existing.SYMLINK}:
                raise TargetError(f"{built} on {self.label} is not a directory")

    def _parents(self, parts: tuple[str, ...], create: bool) -> bool:
        """True when every parent exists as a real directory (made when `create`)."""
        for index in range(1, len(parts)):
            prefix = parts[:index]
            if prefix in self.checked:
                continue
            kind = self._lstat_kind(self._path(prefix))
            if kind == Existing.NONE:
                if not create:
                    return False
                self.sftp.mkdir(self._path(prefix), 0o755)
            elif kind != Existing.DIRECTORY:
                raise Refused(f"{prefix[-1]!r} on its path is a symbolic link or not a directory")
            self.checked.add(prefix)
        return True

    def existing(self, parts: tuple[str, ...]) -> str:
        if not self._parents(parts, create=False):
            return Existing.NONE
        return self._lstat_kind(self._path(parts))

    def make_directory(self, parts: tuple[str, ...], mode: int) -> None:
        self._parents(parts, create=True)
        kind = self._lstat_kind(self._path(parts))
        if kind == Existing.NONE:
            self.sftp.mkdir(self._path(parts), (mode & 0o777) | 0o700)
        elif kind != Existing.DIRECTORY:
            raise Refused("something that is not a directory is in the way")
        self.checked.add(parts)

    def _replace(self, temporary: str, final: str) -> None:
        try:
            self.sftp.posix_rename(temporary, final)
        except OSError:
            with contextlib.suppress(OSError):
                self.sftp.remove(temporary)
            raise

    def write_file(
        self, parts: tuple[str, ...], data: IO[bytes], mode: int, mtime: float, on_bytes: _OnBytes
    ) -> int:
        self._parents(parts, create=True)
        temporary = self._path((*parts[:-1], _temporary_name(parts[-1])))
        written = 0
        try:
            with self.sftp.open(temporary, "wbx") as output:
                output.set_pipelined(True)
                while chunk := data.read(CHUNK):
                    output.write(chunk)
                    written += len(chunk)
                    on_bytes(len(chunk))
            self.sftp.chmod(temporary, mode & 0o777)
            self.sftp.utime(temporary, (mtime, mtime))
        except BaseException:
            with contextlib.suppress(OSError):
                self.sftp.remove(temporary)
            raise
        self._replace(temporary, self._path(parts))
        return written

    def make_symlink(self, parts: tuple[str, ...], link: str) -> None:
        self._parents(parts, create=True)
        temporary = self._path((*parts[:-1], _temporary_name(parts[-1])))
        self.sftp.symlink(link, temporary)
        self._replace(temporary, self._path(parts))

    def make_hardlink(self, parts: tuple[str, ...], existing: tuple[str, ...]) -> None:
        """SFTP has no portable hard link: the second name gets a copy of the bytes.

        The source is looked at first (lstat, every parent a real folder): only a
        regular file inside the target is copied, never what a link points to.
        SFTP cannot open without following links, so a source swapped for a link
        between the look and the open is the one race left; only this restore
        writes under the target while it runs.
        """
        if not self._parents(existing, create=False) or (
            self._lstat_kind(self._path(existing)) != Existing.FILE
        ):
            raise Refused(f"its hard link source {'/'.join(existing)} is not a regular file here")
        with self.sftp.open(self._path(existing), "rb") as source:
            info = source.stat()
            self.write_file(
                parts,
                cast(IO[bytes], source),
                info.st_mode or 0o644,
                float(info.st_mtime or 0),
                lambda count: None,
            )

    def read_link(self, parts: tuple[str, ...]) -> str:
        return str(self.sftp.readlink(self._path(parts)) or "")

    def remove_link(self, parts: tuple[str, ...]) -> None:
        if self._lstat_kind(self._path(parts)) == Existing.SYMLINK:
            self.sftp.remove(self._path(parts))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sftp.close()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()
