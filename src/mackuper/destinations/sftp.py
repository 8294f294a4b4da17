"""A directory on an SFTP server (a NAS, a Hetzner Storage Box), its host key pinned.

The connection and the host key check are the SSH sources' own (mackuper/ssh.py): a
server whose key is not the pinned one never sees a password. An archive is written
to a hidden temporary name beside its final one (`.name.partial-xxxxxxxx`) and then
renamed with the SFTP protocol's plain RENAME, which the protocol defines as failing
when the new name exists (OpenSSH links the new name, which cannot replace a file);
the name is also looked at first, for servers that bend that rule. A worker that
dies mid-upload leaves only the temporary name, which the worker's recovery removes
at start by the name recorded when the upload began; listings never show it.

Requests that only read or remove (stat, list, reads, delete) ride out a dropped
connection by connecting again, for up to `retry_seconds` (core/outage.py); an
upload whose connection drops fails and is removed (or left to recovery).
"""

from __future__ import annotations

import contextlib
import posixpath
import secrets
import stat as stat_mode
import threading
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, TypeVar

import paramiko

from mackuper.core.outage import Outage
from mackuper.destinations.base import (
    PUT_PIECE,
    DestinationError,
    DestinationUnreachable,
    ObjectExists,
    StoredObject,
    UploadStarted,
    is_temporary,
    is_temporary_of,
    temporary_name,
    write_whole,
)
from mackuper.ssh import SSHError, SSHTarget, connect, open_sftp

QUICK_RETRY_SECONDS = 3.0
T = TypeVar("T")


def _from_ssh(error: SSHError) -> DestinationError:
    if error.retryable:
        return DestinationUnreachable(str(error))
    return DestinationError(str(error))


def _is_missing(error: OSError) -> bool:
    return isinstance(error, FileNotFoundError) or getattr(error, "errno", None) == 2


class SFTPWriter:
    """Streams to a temporary name; `commit` renames it into place without replacing."""

    def __init__(
        self,
        destination: SFTPDestination,
        key: str,
        on_upload_started: UploadStarted | None,
    ) -> None:
        self.destination = destination
        self.key = key
        self.final_path = destination.path(key)
        directory, name = posixpath.split(self.final_path)
        self.temp_name = temporary_name(name)
        self.temp_path = posixpath.join(directory, self.temp_name)
        self.size = 0
        self.finished: bool | None = None
        client = destination.client()
        try:
            destination.make_directories(client, directory)
            self._handle = client.open(self.temp_path, "wxb")
        except OSError as error:
            raise destination.explain(error, f"cannot create {self.temp_path}") from None
        # Writes are sent without waiting for each answer; close() collects them.
        self._handle.set_pipelined(True)
        if on_upload_started is not None:
            on_upload_started(self.temp_name)

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._handle.write(bytes(data))
        except OSError as error:
            self.abort()
            raise self.destination.explain(error, f"writing {self.key}") from None
        except (EOFError, paramiko.SSHException):
            self.abort()
            raise DestinationUnreachable(
                f"writing {self.key}: the connection to {self.destination.target.host} broke"
            ) from None
        self.size += len(data)

    def commit(self) -> StoredObject:
        client = self.destination.client()
        try:
            self._handle.close()
            if self.destination.exists(client, self.final_path):
                raise FileExistsError(self.final_path)
            client.rename(self.temp_path, self.final_path)
        except FileExistsError:
            self.abort()
            raise ObjectExists(
                f"{self.key} already exists at {self.destination.describe()}; it was left as it is"
            ) from None
        except OSError as error:
            # RENAME fails on an existing name: another writer published meanwhile.
            raced = not self.destination.connection_lost() and self.destination.exists(
                client, self.final_path
            )
            self.abort()
            if raced:
                raise ObjectExists(
                    f"{self.key} was stored by another writer meanwhile at"
                    f" {self.destination.describe()}; it was left as it is"
                ) from None
            raise self.destination.explain(error, f"finishing {self.key}") from None
        except (EOFError, paramiko.SSHException):
            self.abort()
            raise DestinationUnreachable(
                f"finishing {self.key}: the connection to {self.destination.target.host} broke"
            ) from None
        self.finished = True
        return StoredObject(key=self.key, size=self.size, modified=datetime.now(UTC))

    def abort(self) -> bool:
        if self.finished is not None:
            return self.finished
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self._handle.close()
        try:
            self.destination.remove(self.temp_path)
        except DestinationError:
            self.finished = False  # recovery removes it by the name given to on_upload_started
            return False
        self.finished = True
        return True


class SFTPDestination:
    kind = "sftp"
    prefix = ""

    def __init__(self, target: SSHTarget, base_path: str, retry_seconds: float = 0.0) -> None:
        if not target.host or not target.username:
            raise DestinationError("an SFTP destination needs a host and a user name")
        if not base_path or not posixpath.isabs(base_path):
            raise DestinationError("an SFTP destination needs an absolute directory path")
        self.target = target
        self.root = posixpath.normpath(base_path)
        self.retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._transport: paramiko.Transport | None = None
        self._client: paramiko.SFTPClient | None = None

    def describe(self) -> str:
        return f"sftp://{self.target.username}@{self.target.host}:{self.target.port}{self.root}"

    # --- the connection --------------------------------------------------------

    def client(self) -> paramiko.SFTPClient:
        """The open SFTP session, connecting (and checking the host key) when there is none."""
        with self._lock:
            if self._client is not None and self._transport is not None:
                if self._transport.is_active():
                    return self._client
                self._disconnect()
            try:
                transport = connect(self.target)
            except SSHError as error:
                raise _from_ssh(error) from None
            try:
                client = open_sftp(transport, self.target)
            except SSHError as error:
                transport.close()
                raise _from_ssh(error) from None
            self._transport, self._client = transport, client
            # Closed when this destination is dropped: nothing else holds the transport.
            weakref.finalize(self, transport.close)
            return client

    def _disconnect(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport = self._client = None

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def call(self, request: Callable[[paramiko.SFTPClient], T], what: str) -> T:
        """`request(client)`, connecting again through a dropped connection for up to
        `retry_seconds` (at least QUICK_RETRY_SECONDS); raises DestinationError."""
        outage = Outage(max(self.retry_seconds, QUICK_RETRY_SECONDS))
        while True:
            try:
                return request(self.client())
            except DestinationUnreachable as error:
                failure: DestinationError = error
            except OSError as error:
                if _is_missing(error) or not self.connection_lost():
                    raise self.explain(error, what) from None
                failure = DestinationUnreachable(f"the connection broke while {what}")
            except (EOFError, paramiko.SSHException):
                failure = DestinationUnreachable(f"the connection broke while {what}")
            with self._lock:
                self._disconnect()
            if not outage.pause():
                raise DestinationUnreachable(
                    f"{self.describe()} unreachable: {failure}; gave up after"
                    f" {outage.attempts} attempts over {outage.elapsed():.0f} s"
                ) from None

    def connection_lost(self) -> bool:
        return self._transport is None or not self._transport.is_active()

    def explain(self, error: OSError, what: str) -> DestinationError:
        """One plain sentence for what the server said (or that the connection broke)."""
        if self.connection_lost():
            return DestinationUnreachable(f"{what}: the connection to {self.target.host} broke")
        if _is_missing(error):
            return DestinationError(f"{what}: no such file or directory")
        if isinstance(error, PermissionError):
            return DestinationError(f"{what}: permission denied")
        message = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return DestinationError(f"{what}: {message}")

    # --- names -----------------------------------------------------------------

    def path(self, key: str) -> str:
        parts = [part for part in key.split("/") if part]
        if not parts or any(part in {".", ".."} for part in parts):
            raise DestinationError(f"invalid object key {key!r}")
        return posixpath.join(self.root, *parts)

    @staticmethod
    def exists(client: paramiko.SFTPClient, path: str) -> bool:
        try:
            client.lstat(path)
        except FileNotFoundError:
            return False
        return True

    @staticmethod
    def make_directories(client: paramiko.SFTPClient, directory: str) -> None:
        missing: list[str] = []
        while directory not in {"", "/"}:
            try:
                client.stat(directory)
                break
            except FileNotFoundError:
                missing.append(directory)
                directory = posixpath.dirname(directory)
        for path in reversed(missing):
            try:
                client.mkdir(path)
            except OSError:
                if not SFTPDestination.exists(client, path):  # made meanwhile by another writer
                    raise

    def remove(self, path: str) -> None:
        def unlink(client: paramiko.SFTPClient) -> None:
            try:
                client.remove(path)
            except FileNotFoundError:
                return

        self.call(unlink, f"deleting {path}")

    # --- the protocol ----------------------------------------------------------

    def open_writer(
        self, key: str, metadata: dict[str, str], on_upload_started: UploadStarted | None = None
    ) -> SFTPWriter:
        return SFTPWriter(self, key, on_upload_started)

    def put_bytes(self, key: str, data: bytes | bytearray, content_type: str) -> None:
        writer = self.open_writer(key, {})
        view = memoryview(data)
        for start in range(0, len(view), PUT_PIECE):  # the writer copies what it is given
            writer.write(view[start : start + PUT_PIECE])
        writer.commit()

    def put_file(self, key: str, file: IO[bytes], content_type: str) -> None:
        write_whole(self.open_writer(key, {}), file)

    def stat(self, key: str) -> StoredObject | None:
        path = self.path(key)

        def look(client: paramiko.SFTPClient) -> StoredObject | None:
            try:
                info = client.stat(path)
            except FileNotFoundError:
                return None
            if stat_mode.S_ISDIR(info.st_mode or 0):
                return None
            return StoredObject(key=key, size=info.st_size or 0, modified=_modified(info))

        return self.call(look, f"looking at {key}")

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        path = self.path(key)
        handle = self.call(lambda client: client.open(path, "rb"), f"reading {key}")
        with handle:
            handle.prefetch()
            while True:
                try:
                    chunk = handle.read(chunk_size)
                except OSError as error:
                    raise self.explain(error, f"reading {key}") from None
                except (EOFError, paramiko.SSHException):
                    raise DestinationUnreachable(
                        f"reading {key}: the connection to {self.target.host} broke"
                    ) from None
                if not chunk:
                    return
                yield chunk

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise DestinationError("a range starts and runs at zero or more bytes")
        path = self.path(key)

        def read(client: paramiko.SFTPClient) -> bytes:
            with client.open(path, "rb") as handle:
                if length == 0:
                    return b""
                handle.seek(offset)
                return bytes(handle.read(length))

        return self.call(read, f"reading {key}")

    def presign(self, key: str, filename: str, seconds: int) -> str | None:
        return None

    def delete(self, key: str) -> None:
        self.remove(self.path(key))

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under the base path whose key starts with `prefix`, in key order;
        temporary names are never listed."""
        start = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        directory = posixpath.join(self.root, start) if start else self.root
        entries = self.call(lambda client: _walk(client, directory), f"listing {prefix or '/'}")
        for path, info in entries:
            key = posixpath.relpath(path, self.root)
            if key.startswith(prefix):
                yield StoredObject(key=key, size=info.st_size or 0, modified=_modified(info))

    def abort_upload(self, key: str, upload_id: str) -> None:
        final = self.path(key)
        directory, name = posixpath.split(final)
        if is_temporary_of(upload_id, name):
            self.remove(posixpath.join(directory, upload_id))

    def check_access(self) -> None:
        probe = f".mackuper-probe-{secrets.token_hex(6)}"
        payload = secrets.token_bytes(32)
        try:
            self.put_bytes(probe, payload, "application/octet-stream")
            try:
                if self.get_bytes(probe) != payload:
                    raise DestinationError(
                        f"{self.describe()} returned different bytes than were written"
                    )
            finally:
                self.delete(probe)
        finally:
            self.close()


def _modified(info: paramiko.SFTPAttributes) -> datetime | None:
    return datetime.fromtimestamp(info.st_mtime, UTC) if info.st_mtime is not None else None


def _walk(client: paramiko.SFTPClient, top: str) -> list[tuple[str, paramiko.SFTPAttributes]]:
    """Regular files under `top` (none when it does not exist), sorted by path."""
    found: list[tuple[str, paramiko.SFTPAttributes]] = []
    pending = [top]
    while pending:
        directory = pending.pop()
        try:
            entries = client.listdir_attr(directory)
        except FileNotFoundError:
            continue
        for entry in entries:
            path = posixpath.join(directory, entry.filename)
            mode = entry.st_mode or 0
            if stat_mode.S_ISDIR(mode):
                pending.append(path)
            elif stat_mode.S_ISREG(mode) and not is_temporary(entry.filename):
                found.append((path, entry))
    return sorted(found, key=lambda item: item[0])
