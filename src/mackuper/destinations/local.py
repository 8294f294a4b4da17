"""A directory on the Mackuper host (or a mounted disk)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from mackuper.destinations.base import DestinationError, StoredObject, UploadStarted

_PARTIAL = ".partial-"


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
    """Writes to a hidden temporary name, then fsyncs and renames into place."""

    def __init__(
        self, final_path: Path, key: str, on_upload_started: UploadStarted | None = None
    ) -> None:
        self.final_path = final_path
        self.key = key
        self.temp_path = final_path.with_name(f".{final_path.name}{_PARTIAL}{secrets.token_hex(4)}")
        self.size = 0
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

    def commit(self) -> StoredObject:
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self.temp_path, self.final_path)
            _fsync_directory(self.final_path.parent)
        except OSError as error:
            self.abort()
            raise _explain(error, f"finishing {self.key}") from None
        return StoredObject(key=self.key, size=self.size, modified=datetime.now(UTC))

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()
        self.temp_path.unlink(missing_ok=True)


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

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        writer = self.open_writer(key, {})
        writer.write(data)
        writer.commit()

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
                if _PARTIAL in name:
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
        if upload_id.startswith(f".{final.name}{_PARTIAL}") and "/" not in upload_id:
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
