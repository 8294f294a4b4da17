"""Reading stored objects back: as a stream, as a seekable file, or by presigned URL.

The destination protocol streams whole objects; ZIP needs random access to its
central directory, so S3 objects are read by HTTP range requests and local
objects are opened as files. Only this module looks inside the two kinds.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from mackuper.destinations.base import Destination, DestinationError
from mackuper.destinations.local import LocalDestination
from mackuper.destinations.s3 import S3Destination, explain_client_error

BLOCK_SIZE = 4 * 1024 * 1024


class ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of chunks; `on_bytes` sees every chunk."""

    def __init__(
        self, chunks: Iterator[bytes], on_bytes: Callable[[bytes], None] | None = None
    ) -> None:
        self.chunks = chunks
        self.on_bytes = on_bytes
        self.pending = b""
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            if self.on_bytes is not None:
                self.on_bytes(chunk)
            self.pending = chunk
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        self.position += count
        return count

    def tell(self) -> int:
        return self.position


def local_path(destination: LocalDestination, key: str) -> Path:
    parts = [part for part in key.split("/") if part]
    if not parts or any(part in {".", ".."} for part in parts):
        raise DestinationError(f"invalid object key {key!r}")
    return destination.root.joinpath(*parts)


def open_stream(
    destination: Destination, key: str, on_bytes: Callable[[bytes], None] | None = None
) -> BinaryIO:
    """The object's bytes as a buffered stream, read once from start to end."""
    raw = ChunkReader(iter(destination.iter_chunks(key, 1 << 20)), on_bytes)
    return io.BufferedReader(raw, 1 << 20)


class RangedReader(io.RawIOBase):
    """A seekable view of an S3 object that fetches blocks by range requests."""

    def __init__(
        self, destination: S3Destination, key: str, size: int, block_size: int = BLOCK_SIZE
    ) -> None:
        self.destination = destination
        self.key = key
        self.size = size
        self.block_size = block_size
        self.fetched = 0
        self.position = 0
        self.block_start = -1
        self.block = b""
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def _fetch(self, start: int) -> None:
        end = min(self.size, start + self.block_size) - 1
        try:
            response = self.destination.client.get_object(
                Bucket=self.destination.bucket, Key=self.key, Range=f"bytes={start}-{end}"
            )
            self.block = response["Body"].read()
        except (BotoCoreError, ClientError) as error:
            raise explain_client_error(
                error, self.destination.bucket, self.destination.region
            ) from None
        self.block_start = start
        self.requests += 1
        self.fetched += len(self.block)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.position >= self.size or not len(buffer):
            return 0
        inside = self.block_start <= self.position < self.block_start + len(self.block)
        if not inside:
            self._fetch(self.position)
        offset = self.position - self.block_start
        count = min(len(buffer), len(self.block) - offset)
        buffer[:count] = self.block[offset : offset + count]
        self.position += count
        return count


def object_size(destination: Destination, key: str) -> int:
    """The stored object's size in bytes; raises DestinationError when it is missing."""
    if isinstance(destination, LocalDestination):
        try:
            return local_path(destination, key).stat().st_size
        except FileNotFoundError:
            raise DestinationError(f"{key} does not exist at {destination.describe()}") from None
    if isinstance(destination, S3Destination):
        try:
            head = destination.client.head_object(Bucket=destination.bucket, Key=key)
        except (BotoCoreError, ClientError) as error:
            raise explain_client_error(error, destination.bucket, destination.region) from None
        return int(head["ContentLength"])
    raise DestinationError(f"{destination.describe()} cannot be read by position")


def open_seekable(destination: Destination, key: str) -> BinaryIO:
    """A seekable reader of the object (a local file, or S3 by range requests)."""
    if isinstance(destination, LocalDestination):
        try:
            return local_path(destination, key).open("rb")
        except FileNotFoundError:
            raise DestinationError(f"{key} does not exist at {destination.describe()}") from None
    if isinstance(destination, S3Destination):
        raw = RangedReader(destination, key, object_size(destination, key))
        return io.BufferedReader(raw, 64 * 1024)
    raise DestinationError(f"{destination.describe()} cannot be read by position")


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback and the RFC 5987 UTF-8 name."""
    fallback = "".join(
        character if 32 <= ord(character) < 127 and character not in '"\\%;' else "_"
        for character in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def presigned_url(destination: Destination, key: str, filename: str, seconds: int) -> str | None:
    """A short-lived download URL for S3 objects; None for other kinds."""
    if not isinstance(destination, S3Destination):
        return None
    return destination.client.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": destination.bucket,
            "Key": key,
            "ResponseContentDisposition": content_disposition(filename),
        },
        ExpiresIn=seconds,
    )
