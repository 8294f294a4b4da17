"""A directory on the Mackuper host (or a mounted disk)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from mackuper.destinations.base import (
    DestinationError,
    ObjectExists,
    StoredObject,
    UploadStarted,
    is_temporary,
    is_temporary_of,
    temporary_name,
    write_whole,
)

WRITEBACK_STEP = 32 << 20
_SYNC_FILE_RANGE_WAIT_BEFORE, _SYNC_FILE_RANGE_WRITE, _SYNC_FILE_RANGE_WAIT_AFTER = 1, 2, 4


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2), or None where libc has no such call."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_start_writeback = _sync_file_range()

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    """Linux's renameat2(2) (glibc 2.28+), or None where libc has no such call."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


_rename_no_replace = _renameat2()
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}


def publish_no_replace(temp_path: Path, final_path: Path) -> None:
    """Move `temp_path` to `final_path` unless something is there already.

    Raises FileExistsError when `final_path` exists (then `temp_path` is left as is)
    and OSError for anything else. The atomic ways first: rename with
    RENAME_NOREPLACE (ext4, xfs, btrfs, tmpfs), else a hard link, which also fails
    on an existing name, then removing the temporary name. A file system with
    neither (FAT, some network mounts) gets a look before an ordinary rename: two
    writers racing for one name within that moment is the one case left, and
    distinct run names (core/naming.py) already keep Mackuper's own runs apart.
    """
    if _rename_no_replace is not None:
        result = _rename_no_replace(
            _AT_FDCWD, os.fsencode(temp_path), _AT_FDCWD, os.fsencode(final_path), _RENAME_NOREPLACE
        )
        if result == 0:
            return
        number = ctypes.get_errno()
        if number == errno.EEXIST:
            raise FileExistsError(number, os.strerror(number), str(final_path))
        if number not in _UNSUPPORTED:
            raise OSError(number, os.strerror(number), str(temp_path))
    try:
        os.link(temp_path, final_path)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in _UNSUPPORTED:
            raise
        if os.path.lexists(final_path):
            raise FileExistsError(
                errno.EEXIST, os.strerror(errno.EEXIST), str(final_path)
            ) from None
        os.rename(temp_path, final_path)
        return
    temp_path.unlink()


def _explain(error: OSError, what: str) -> DestinationError:
    if error.errno == errno.ENOSPC:
        return DestinationError(f"{what}: the destination disk is full (no space left on device)")
    if error.errno in {errno.EACCES, errno.EPERM, errno.EROFS}:
        return DestinationError(f"{what}: permission denied ({error.strerror})")
    return DestinationError(f"{what}: {error.strerror or error}")


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class LocalWriter:
    """Writes to a hidden temporary name, then fsyncs and renames into place.

    The archive goes to disk as it is written, in a 32 MiB window: each time 32 MiB
    more are written, the kernel is asked to start writing them out
    (sync_file_range), the 32 MiB before them are waited for and dropped from the
    page cache (posix_fadvise DONTNEED). So a backup never fills memory with dirty
    pages or pushes other programs' files out of the cache, the final fsync has
    little left to do, and the same few pages are reused for the whole archive.
    Measured on the 2-core VM (docs/benchmarks.md): writing and fsyncing 1 GiB took
    1.7 s of which 1.4 s kernel CPU without the window, 0.37 s with it.
    """

    def __init__(
        self, final_path: Path, key: str, on_upload_started: UploadStarted | None = None
    ) -> None:
        self.final_path = final_path
        self.key = key
        self.temp_path = final_path.with_name(temporary_name(final_path.name))
        self.size = 0
        self._written_back = 0
        self._in_flight: tuple[int, int] | None = None
        try:
            final_path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.temp_path.open("xb")
        except OSError as error:
            raise _explain(error, f"cannot create {final_path.parent}") from None
        if on_upload_started is not None:
            on_upload_started(self.temp_path.name)

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._handle.write(data)
        except OSError as error:
            self.abort()
            raise _explain(error, f"writing {self.key}") from None
        self.size += len(data)
        if self.size - self._written_back >= WRITEBACK_STEP and _start_writeback is not None:
            self._write_back(_start_writeback)

    def _write_back(self, sync_file_range: Callable[[int, int, int, int], int]) -> None:
        """Start write-out of the newest step; wait for the one before and drop it from cache."""
        self._handle.flush()
        descriptor = self._handle.fileno()
        if self._in_flight is not None:
            start, end = self._in_flight
            sync_file_range(
                descriptor,
                start,
                end - start,
                _SYNC_FILE_RANGE_WAIT_BEFORE | _SYNC_FILE_RANGE_WRITE | _SYNC_FILE_RANGE_WAIT_AFTER,
            )
            with contextlib.suppress(OSError):
                os.posix_fadvise(descriptor, start, end - start, os.POSIX_FADV_DONTNEED)
        start = self._written_back
        sync_file_range(descriptor, start, self.size - start, _SYNC_FILE_RANGE_WRITE)
        self._in_flight = (start, self.size)
        self._written_back = self.size

    def commit(self) -> StoredObject:
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            # An archive (written through the window), not a manifest: out of the cache.
            if self._in_flight is not None:
                with contextlib.suppress(OSError):
                    os.posix_fadvise(self._handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            self._handle.close()
            publish_no_replace(self.temp_path, self.final_path)
            _fsync_directory(self.final_path.parent)
        except FileExistsError:
            self.abort()
            raise ObjectExists(
                f"{self.key} already exists at {self.final_path.parent}; it was left as it is"
            ) from None
        except OSError as error:
            self.abort()
            raise _explain(error, f"finishing {self.key}") from None
        return StoredObject(key=self.key, size=self.size, modified=datetime.now(UTC))

    def abort(self) -> bool:
        with contextlib.suppress(OSError):
            self._handle.close()
        try:
            self.temp_path.unlink(missing_ok=True)
        except OSError:
            return False  # recovery removes it by the name given to on_upload_started
        return True


class LocalDestination:
    kind = "local"
    prefix = ""

    def __init__(self, path: str) -> None:
        if not path or not os.path.isabs(path):
            raise DestinationError("a local destination needs an absolute directory path")
        self.root = Path(path)

    def describe(self) -> str:
        return f"local directory {self.root}"

    def _path(self, key: str) -> Path:
        parts = [part for part in key.split("/") if part]
        if not parts or any(part in {".", ".."} for part in parts):
            raise DestinationError(f"invalid object key {key!r}")
        return self.root.joinpath(*parts)

    def open_writer(
        self, key: str, metadata: dict[str, str], on_upload_started: UploadStarted | None = None
    ) -> LocalWriter:
        return LocalWriter(self._path(key), key, on_upload_started)

    def put_bytes(self, key: str, data: bytes | bytearray, content_type: str) -> None:
        writer = self.open_writer(key, {})
        writer.write(memoryview(data))
        writer.commit()

    def put_file(self, key: str, file: IO[bytes], content_type: str) -> None:
        write_whole(self.open_writer(key, {}), file)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise DestinationError(f"{key} does not exist at {self.describe()}") from None
        except OSError as error:
            raise _explain(error, f"reading {key}") from None

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            raise DestinationError(f"{key} does not exist at {self.describe()}") from None
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise DestinationError("a range starts and runs at zero or more bytes")
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        except FileNotFoundError:
            raise DestinationError(f"{key} does not exist at {self.describe()}") from None
        except OSError as error:
            raise _explain(error, f"reading {key}") from None

    def presign(self, key: str, filename: str, seconds: int) -> str | None:
        return None

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _explain(error, f"looking at {key}") from None
        return StoredObject(
            key=key, size=info.st_size, modified=datetime.fromtimestamp(info.st_mtime, UTC)
        )

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as error:
            raise _explain(error, f"deleting {key}") from None

    def list(self, prefix: str) -> Iterator[StoredObject]:
        if not self.root.is_dir():
            return
        for directory, _subdirectories, files in os.walk(self.root):
            for name in sorted(files):
                if is_temporary(name):
                    continue
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    info = path.stat()
                    yield StoredObject(
                        key=key,
                        size=info.st_size,
                        modified=datetime.fromtimestamp(info.st_mtime, UTC),
                    )

    def abort_upload(self, key: str, upload_id: str) -> None:
        final = self._path(key)
        if is_temporary_of(upload_id, final.name):
            (final.parent / upload_id).unlink(missing_ok=True)

    def check_access(self) -> None:
        probe = f".mackuper-probe-{secrets.token_hex(6)}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _explain(error, f"cannot create {self.root}") from None
        payload = secrets.token_bytes(32)
        self.put_bytes(probe, payload, "application/octet-stream")
        try:
            if self.get_bytes(probe) != payload:
                raise DestinationError(f"{self.root} returned different bytes than were written")
        finally:
            self.delete(probe)
