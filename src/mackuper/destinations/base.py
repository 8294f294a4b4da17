"""The destination protocol and its one error hierarchy."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Protocol, runtime_checkable
from urllib.parse import quote


class DestinationError(Exception):
    """The destination refused or failed an operation."""

    retryable = False


class DestinationUnreachable(DestinationError):
    """The destination could not be reached."""

    retryable = True


class ObjectExists(DestinationError):
    """An object already exists at that name; Mackuper never replaces a stored object."""


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback and the RFC 5987 UTF-8 name."""
    fallback = "".join(
        character if 32 <= ord(character) < 127 and character not in '"\\%;' else "_"
        for character in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime | None = None


class ArtifactWriter(Protocol):
    """An archive being written; visible at the destination only after `commit`."""

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self) -> StoredObject:
        """Publish the object; raises DestinationError (and aborts) on failure.

        Never replaces an object already at the key: raises ObjectExists instead.
        """
        ...

    def abort(self) -> bool:
        """Remove everything written so far; never raises.

        Returns False when the destination could not be reached to remove it (an outage
        outlasting the retries): the id given to `on_upload_started` then lets recovery
        remove it later with `Destination.abort_upload`. Calling it again is harmless.
        """
        ...


PUT_PIECE = 1 << 20
"""Bytes of a spooled object handed to a writer at a time."""


def write_whole(writer: ArtifactWriter, file: IO[bytes]) -> StoredObject:
    """Copy `file` from its start into `writer` and commit it; aborts it on failure."""
    try:
        file.seek(0)
        while piece := file.read(PUT_PIECE):
            writer.write(piece)
    except BaseException:
        writer.abort()
        raise
    return writer.commit()


UploadStarted = Callable[[str], None]
"""Called with a resumable upload's id as soon as it exists, so recovery can abort it."""


class Destination(Protocol):
    kind: str
    prefix: str
    """Prepended to every key this installation writes ('' or 'a/b/')."""

    def describe(self) -> str: ...

    def open_writer(
        self, key: str, metadata: dict[str, str], on_upload_started: UploadStarted | None = None
    ) -> ArtifactWriter: ...

    def put_bytes(self, key: str, data: bytes | bytearray, content_type: str) -> None:
        """Store a small object; raises ObjectExists when one is at the key already."""
        ...

    def put_file(self, key: str, file: IO[bytes], content_type: str) -> None:
        """Store the whole of `file` (seekable; read from its start), like `put_bytes`:
        a run's manifest, spooled to a temporary file (pipeline/filelist.py)."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """The object at `key`, or None when there is none; raises DestinationError."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer only at the object's end, none past
        it); raises DestinationError when the object is missing."""
        ...

    def presign(self, key: str, filename: str, seconds: int) -> str | None:
        """A URL that downloads the object as `filename` for `seconds`, or None where the
        kind has no such links (the web process then streams the object itself)."""
        ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort a resumable upload left by a dead worker or a failed run; an upload that is
        gone already is no error. Raises DestinationUnreachable when the destination cannot
        be reached, so recovery tries again later."""
        ...

    def check_access(self) -> None:
        """Prove write access with a real put, get and delete; raises DestinationError."""
        ...


@dataclass(frozen=True)
class Lock:
    """An object version's retention: S3 Object Lock's mode and retain-until date."""

    mode: str
    """GOVERNANCE or COMPLIANCE."""
    until: datetime


@runtime_checkable
class Lockable(Protocol):
    """A destination that can make what it stores immutable until a date (S3 Object Lock).

    While `lock_mode` is set, everything stored carries a retention of that mode until
    `retain_until` (set per backup from the job's retention policy before writing).
    """

    lock_mode: str
    """'' (no locks), GOVERNANCE or COMPLIANCE."""
    retain_until: datetime | None

    def lock_of(self, key: str) -> Lock | None:
        """The current version's lock, or None when it has none; raises DestinationError."""
        ...

    def extend_lock(self, key: str, until: datetime) -> None:
        """Keep the current version locked until `until` (never shortens a lock)."""
        ...

    def protection(self) -> list[str]:
        """Sentences on the bucket's versioning, Object Lock and default retention."""
        ...


# --- temporary names ------------------------------------------------------------
# Kinds without multipart uploads (local, SFTP, rclone) write beside the final name
# under a hidden temporary one, publish by a rename that never replaces, and give the
# temporary name as the upload id, so recovery can remove what a dead worker left.

PARTIAL = ".partial-"


def temporary_name(name: str) -> str:
    """A hidden, unique temporary name for an object to be published as `name`."""
    return f".{name}{PARTIAL}{secrets.token_hex(4)}"


def is_temporary(name: str) -> bool:
    """Whether a file name is an upload still in progress (listings leave it out)."""
    return PARTIAL in name


def is_temporary_of(upload_id: str, name: str) -> bool:
    """Whether `upload_id` is a temporary name made for `name` (and nothing else)."""
    return upload_id.startswith(f".{name}{PARTIAL}") and "/" not in upload_id
