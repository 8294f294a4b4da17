"""A bandwidth limit per destination, for uploads and for reads (restores, verification).

`Limited` wraps any destination kind: bytes written to its writers and bytes read
through it are paced so that, over any stretch longer than a second, they average at
most `bytes_per_second`. Pacing keeps a running due time (`Pace`): each piece adds its
size / rate, and the caller sleeps while ahead of it; an idle spell earns at most
BURST_SECONDS of credit. Everything else (listing, deletes, Object Lock) passes
through untouched, attributes included, so kind-specific checks still see the kind.

A limit may hold only within a daily window ("08:00-20:00", or "22:00-06:00" across
midnight) in the worker's local time (its TZ); outside it transfers run free.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from datetime import time as clock_time
from typing import IO, Any

from mackuper.destinations.base import ArtifactWriter, Destination, StoredObject, UploadStarted

BURST_SECONDS = 0.5
PIECE = 256 * 1024
"""Writes are paced in pieces this size, so a large write does not arrive as one burst."""


WINDOW = re.compile(r"^(?:([01]\d|2[0-3]):([0-5]\d))-(?:([01]\d|2[0-3]):([0-5]\d))$")


def parse_window(text: str) -> tuple[clock_time, clock_time] | None:
    """`HH:MM-HH:MM` as its start and end; None for ''; raises ValueError otherwise."""
    if not text:
        return None
    match = WINDOW.match(text)
    if match is None:
        raise ValueError("use HH:MM-HH:MM, such as 08:00-20:00")
    hour, minute, end_hour, end_minute = (int(part) for part in match.groups())
    return clock_time(hour, minute), clock_time(end_hour, end_minute)


def in_window(moment: clock_time, window: tuple[clock_time, clock_time] | None) -> bool:
    """Whether `moment` falls in the daily `window` (start included, end not); a window
    whose end comes before its start runs across midnight; None is always."""
    if window is None:
        return True
    start, end = window
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def _local_time() -> clock_time:
    return datetime.now(UTC).astimezone().time()


class Pace:
    """Sleeps so that what passes averages at most `bytes_per_second` (while `active()`)."""

    def __init__(
        self,
        bytes_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.rate = bytes_per_second
        self.clock = clock
        self.sleep = sleep
        self.active = active
        self.due = clock()
        self.lock = threading.Lock()

    def take(self, size: int) -> None:
        if not self.active():
            return
        with self.lock:
            now = self.clock()
            self.due = max(self.due, now - BURST_SECONDS) + size / self.rate
            wait = self.due - now
        if wait > 0:
            self.sleep(wait)


class LimitedWriter:
    def __init__(self, writer: ArtifactWriter, pace: Pace) -> None:
        self.writer = writer
        self.pace = pace

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), PIECE):
            piece = view[start : start + PIECE]
            self.pace.take(len(piece))
            self.writer.write(piece)

    def commit(self) -> StoredObject:
        return self.writer.commit()

    def abort(self) -> bool:
        return self.writer.abort()


class Limited:
    """`destination` with its transfers paced to `bytes_per_second` (see the module)."""

    _OWN = frozenset({"inner", "pace", "kind", "prefix"})
    kind: str
    prefix: str

    def __init__(
        self,
        destination: Destination,
        bytes_per_second: float,
        window: tuple[clock_time, clock_time] | None = None,
    ) -> None:
        pace = Pace(bytes_per_second, active=lambda: in_window(_local_time(), window))
        object.__setattr__(self, "inner", destination)
        object.__setattr__(self, "pace", pace)
        object.__setattr__(self, "kind", destination.kind)
        object.__setattr__(self, "prefix", destination.prefix)

    inner: Destination
    pace: Pace

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.inner, name, value)

    def describe(self) -> str:
        return self.inner.describe()

    def open_writer(
        self, key: str, metadata: dict[str, str], on_upload_started: UploadStarted | None = None
    ) -> ArtifactWriter:
        return LimitedWriter(self.inner.open_writer(key, metadata, on_upload_started), self.pace)

    def put_bytes(self, key: str, data: bytes | bytearray, content_type: str) -> None:
        self.pace.take(len(data))
        self.inner.put_bytes(key, data, content_type)

    def put_file(self, key: str, file: IO[bytes], content_type: str) -> None:
        self.pace.take(file.seek(0, os.SEEK_END))
        self.inner.put_file(key, file, content_type)

    def stat(self, key: str) -> StoredObject | None:
        return self.inner.stat(key)

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        for chunk in self.inner.iter_chunks(key, min(chunk_size, PIECE)):
            self.pace.take(len(chunk))
            yield chunk

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        data = self.inner.read_range(key, offset, length)
        self.pace.take(len(data))
        return data

    def presign(self, key: str, filename: str, seconds: int) -> str | None:
        return None  # a link would bypass the limit: the web process streams instead

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator[StoredObject]:
        return self.inner.list(prefix)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.inner.abort_upload(key, upload_id)

    def check_access(self) -> None:
        self.inner.check_access()
