"""A dump command's output as archive entries: fixed-size parts, held in memory one at a time.

A tar header states its entry's size before the bytes, and a dump's size is known
only when the dump ends. Options measured (README, "Database dumps"; bench/dump_parts.py):

- staging the dump in a temporary file first: a second copy on disk as large as the
  dump, and the archive starts only when the dump has ended;
- one pax header written after spooling the whole dump: memory as large as the dump;
- GNU multi-volume or sparse members: only GNU tar reads them back, and both still
  need the size of what they describe up front;
- the dump cut into parts of at most `PART_SIZE` bytes, each a plain regular member
  (`<name>.part000001`, `<name>.part000002`, ...): only one part is ever held, every
  tar (and unzip) reads them, and `tar -xOf archive --wildcards '<name>.part*'` writes
  them in archive order, joined, to a restore tool's standard input.

The last is what Mackuper does. A dump that exits non-zero, is killed or is cut
short raises `SourceError` after its last part, so the run fails and nothing is
published; its standard error goes to the run log line by line.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import re
import subprocess
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, BinaryIO, Self, cast

from mackuper.sources.base import Entry, EntryType, Reporter, SourceError
from mackuper.ssh import NOT_THE_TOOL, OUTPUT_MARK, TOOL_STARTS

PART_SIZE = 16 << 20
"""Bytes per part: one part is held in memory while it is archived. bench/dump_parts.py,
512 MiB to tar.zst: 1, 4, 16 and 64 MiB parts took 12.9, 11.0, 14.0 and 15.2 s (a loaded
machine: noise) at 108, 107, 114 and 169 MiB peak RSS. 16 MiB: flat memory with 16
times fewer members and manifest lines than 1 MiB."""

PART_SUFFIX = ".part"
STDERR_LINES = 200
"""Lines of a dump's standard error kept for the log; the rest are counted."""
PREAMBLE_LINES = (STDERR_LINES - 1) // 2
"""While TOOL_STARTS has not come: the first and the last this many lines are held (the
ones between are counted in one line, so all fit in the log's STDERR_LINES), so a marker
after any greeting is still honoured, and the lines of a command that never said it keep
their first one (often why it failed)."""


class DumpFailed(SourceError):
    """A dump command failed; `code` is its exit status and `lines` its last error lines."""

    def __init__(self, message: str, code: int, lines: list[str]) -> None:
        super().__init__(message)
        self.code = code
        self.lines = lines


class _PartReader:
    """One part's bytes, read once by the archive writer (no copy of the buffer)."""

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.position = 0

    def readinto(self, buffer: memoryview) -> int:
        count = min(len(buffer), len(self.view) - self.position)
        buffer[:count] = self.view[self.position : self.position + count]
        self.position += count
        return count

    def read(self, size: int = -1) -> bytes:
        end = len(self.view) if size < 0 else min(len(self.view), self.position + size)
        data = bytes(self.view[self.position : end])
        self.position = end
        return data

    def close(self) -> None:
        """Nothing to release: the buffer belongs to the dump."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@functools.cache
def tool_version(program: str) -> str:
    """The first line `program --version` prints (what the manifest records), or ""."""
    try:
        result = subprocess.run(  # noqa: S603 - a fixed program name of ours
            [program, "--version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = result.stdout.decode("utf-8", "replace").strip().splitlines()
    return lines[0][:200] if lines and result.returncode == 0 else ""


def part_name(name: str, number: int) -> str:
    """The member name of part `number` (from 1) of the dump stored as `name`."""
    return f"{name}{PART_SUFFIX}{number:06d}"


def fill(stream: IO[bytes], buffer: bytearray) -> int:
    """Read into `buffer` until it is full or the stream ends; the count read."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return int(filled)


def iter_parts(
    name: str, stream: IO[bytes], mode: int = 0o600, part_size: int = PART_SIZE
) -> Iterator[Entry]:
    """Entries of at most `part_size` bytes holding `stream`, read as they are archived.

    At least one part is yielded, empty for an empty stream. The buffer is reused,
    which is safe because the pipeline has archived a part before it asks for the next.
    """
    buffer = bytearray(part_size)
    number = 0
    mtime = time.time()
    while True:
        count = fill(stream, buffer)
        number += 1
        reader = _PartReader(memoryview(buffer)[:count])
        yield Entry(
            name=part_name(name, number),
            type=EntryType.FILE,
            size=count,
            mode=mode,
            mtime=mtime,
            open=lambda reader=reader: cast(BinaryIO, reader),  # type: ignore[misc]
        )
        if count < part_size:
            return


class DumpProcess:
    """A running dump command: its standard output to read, its standard error kept.

    `env` is added to the worker's environment; passwords travel there (PGPASSWORD,
    MYSQL_PWD, REDISCLI_AUTH), never on the command line.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        label: str,
        stdin: bool = False,
        feed: bytes | None = None,
        mark: str = "",
        preamble: bool = False,
    ) -> None:
        """With `stdin`, the command reads what is written to `stdin` (a restore tool)
        and its output is discarded; else its output is `stdout` and it reads `feed`
        (settings and a password for a command run over SSH), or nothing. `mark`: the
        prefix of the standard error lines that are the tool's own (Completion.spoken);
        it is taken off them, and the first such line kept as `marked`. `preamble`: the
        command runs over SSH, where a login shell may speak first; its standard error
        counts from the line after TOOL_STARTS (all of it when that line never comes)."""
        self.label = label
        self.mark = mark
        self.preamble = preamble
        self.marked: str | None = None
        self.errors: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.last_error = ""
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        """The last lines, kept after they went to the log: what a failure is judged by."""
        self.lock = threading.Lock()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - argv built by the caller, no shell
                list(argv),
                stdin=subprocess.PIPE if stdin or feed is not None else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if stdin else subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, **env},
            )
        except OSError as error:
            raise SourceError(f"cannot start {argv[0]}: {error.strerror or error}") from error
        self.stdin: IO[bytes] | None = self.process.stdin
        self.stdout: IO[bytes] | None = self.process.stdout
        if feed is not None and self.stdin is not None:
            with contextlib.suppress(BrokenPipeError):  # a command that died says why itself
                self.stdin.write(feed)  # a few short lines: within any pipe's buffer
                self.stdin.close()
            self.stdin = None
        self.reader = threading.Thread(target=self._read_errors, name=f"{label} stderr")
        self.reader.start()

    def _read_errors(self) -> None:
        assert self.process.stderr is not None  # noqa: S101 - PIPE was asked for
        started = not self.preamble
        first: list[str] = []
        last: collections.deque[str] = collections.deque(maxlen=PREAMBLE_LINES)
        between = 0
        for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if started:
                self._keep(line)
            elif line == TOOL_STARTS:
                started = True  # the login shell's lines held so far are dropped
            elif not line:
                continue  # blank (the marker's own line break): never kept anyway
            elif len(first) < PREAMBLE_LINES:
                first.append(line)
            else:
                between += len(last) == PREAMBLE_LINES
                last.append(line)
        if not started:  # no tool started: the SSH client's or the shell's own failure
            for line in first:
                self._keep(line)
            if between:
                self._keep(f"({between} more lines)")
            for line in last:
                self._keep(line)

    def _keep(self, line: str) -> None:
        if self.mark and line.startswith(self.mark):
            line = line[len(self.mark) :]
            if self.marked is None:
                self.marked = line or "an error"
        if line:
            with self.lock:
                self.errors.append(line)
                self.tail.append(line)
                # "pg_dump: error: ..." says why; a "detail:" line after it says where
                if "error" in line.lower() or not self.last_error:
                    self.last_error = line

    def log_errors(self, reporter: Reporter) -> None:
        """Pass the standard error lines seen so far to the run log (from the run's thread)."""
        with self.lock:
            lines = list(self.errors)
            self.errors.clear()
        for line in lines:
            reporter.note(f"{self.label}: {line}")

    def finish(self, reporter: Reporter) -> None:
        """Wait for the command; SourceError when it failed or was killed."""
        code = self.process.wait()
        self.reader.join()
        with self.lock:
            lines = list(self.tail)
        self.log_errors(reporter)
        last = self.last_error
        if code == 0:
            return
        why = f"was killed by signal {-code}" if code < 0 else f"failed (exit status {code})"
        raise DumpFailed(f"{self.label} {why}" + (f": {last}" if last else ""), code, lines)

    def stop(self) -> None:
        """Kill the command if it still runs (the backup stopped early); never raises."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.stdin, self.stdout):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):  # unread input goes with it
                    pipe.close()
        self.reader.join()
        if self.process.stderr is not None:
            self.process.stderr.close()


MAX_OUTPUT_PREAMBLE = 1 << 20
"""The most a login shell may print on standard output before the tool starts."""


class _AfterMark:
    """A command's standard output from after OUTPUT_MARK (sources/remote.py): what the
    login shell printed before it is left out and counted in `skipped`. When the output
    ends without the mark, `missing` is set and nothing is passed on: the tool never ran
    (its exit status says why, or the host ran something else)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.pending = b""
        self.searching = True
        self.missing = False
        self.skipped = 0

    def readinto(self, view: memoryview) -> int:
        if self.searching:
            self._find()
        if self.pending:
            count = min(len(view), len(self.pending))
            view[:count] = self.pending[:count]
            self.pending = self.pending[count:]
            return count
        return 0 if self.missing else int(self.stream.readinto(view))  # type: ignore[attr-defined]

    def _find(self) -> None:
        seen = bytearray()
        searched = 0  # the mark does not start before this: each byte is searched once
        while (at := seen.find(OUTPUT_MARK, searched)) < 0:
            searched = max(0, len(seen) - len(OUTPUT_MARK) + 1)
            if len(seen) > MAX_OUTPUT_PREAMBLE:
                raise SourceError(
                    "the SSH host's login shell printed over 1 MiB on standard output"
                    " before the tool started"
                )
            chunk = self.stream.read1(1 << 16)  # type: ignore[attr-defined]
            if not chunk:
                self.searching, self.missing, self.skipped = False, True, len(seen)
                return
            seen += chunk
        self.searching, self.skipped = False, at
        self.pending = bytes(seen[at + len(OUTPUT_MARK) :])


TAIL_BYTES = 4096
"""How much of a dump's end is kept to judge how it ended (and quote its last line)."""


@dataclass(frozen=True)
class Completion:
    """How to tell a complete dump from the output of a tool that reports some failures
    only inside it and still exits 0: the `sqlite3` shell's `.dump` on a database it
    cannot lock writes `/**** ERROR: (5) database is locked *****/` and `ROLLBACK; --
    due to errors`; on a damaged schema it writes its error to standard error and an
    empty dump that ends `COMMIT;` like a good one."""

    ending: bytes
    """What a complete dump ends with."""
    error_mark: bytes = b""
    """What starts a line the tool writes into its output only for an error."""
    silent: bool = False
    """The tool writes nothing to standard error unless something went wrong."""
    spoken: str = ""
    """Where standard error also carries others' lines (a login shell's over SSH), the
    prefix a wrapper puts on the tool's own lines there: any such line fails the dump,
    as `silent` does for the whole stream."""


class _Watched:
    """Reads a stream, keeps its last TAIL_BYTES and the first line that starts with
    the completion's error mark (up to LINE_BYTES of it)."""

    LINE_BYTES = 300

    def __init__(self, stream: IO[bytes], completion: Completion) -> None:
        self.stream = stream
        self.completion = completion
        self.last = b"\n"  # the output's first line starts a line too
        self.line: bytes | None = None
        """The error line from its mark on, while it is read and after."""
        self._needle = b"\n" + completion.error_mark if completion.error_mark else b""
        self._search = re.compile(re.escape(self._needle)).search if self._needle else None

    def readinto(self, view: memoryview) -> int:
        count = int(self.stream.readinto(view))  # type: ignore[attr-defined]
        if not count:
            return 0
        piece = view[:count]
        if self.line is not None:
            if b"\n" not in self.line and len(self.line) < self.LINE_BYTES:
                self.line += bytes(piece[: self.LINE_BYTES - len(self.line)])
        elif self._search is not None:
            reach = len(self._needle) - 1  # a mark across two reads, or at the start
            edge = self.last[-reach:] + bytes(piece[:reach])
            if (at := edge.find(self._needle)) >= 0:
                self.line = edge[at + 1 :] + bytes(piece[reach : reach + self.LINE_BYTES])
            elif found := self._search(piece):
                start = found.start() + 1
                self.line = bytes(piece[start : start + self.LINE_BYTES])
        self.last = (self.last + bytes(piece[max(0, count - TAIL_BYTES) :]))[-TAIL_BYTES:]
        return count

    def failure(self, dump: DumpProcess) -> str:
        """Why the dump, which exited 0, is not complete; "" when it is."""
        if self.line is not None:
            text = self.line.split(b"\n", 1)[0].decode("utf-8", "replace")
            return text[: self.LINE_BYTES].strip("/* ") or "an error"
        if self.completion.silent and dump.last_error:
            return dump.last_error
        if self.completion.spoken and dump.marked is not None:
            return dump.marked
        ending = self.completion.ending
        if not self.last.endswith(ending):
            lines = self.last.decode("utf-8", "replace").strip().splitlines()
            ended = repr(lines[-1][:200]) if lines else "nothing"
            return f"its output ends with {ended}, not {ending.decode().strip()!r}"
        return ""


def dump_entries(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    label: str,
    reporter: Reporter,
    part_size: int = PART_SIZE,
    feed: bytes | None = None,
    completion: Completion | None = None,
    preamble: bool = False,
) -> Iterator[Entry]:
    """The parts of `argv`'s standard output stored as `name`; SourceError when it fails.

    `completion`: for a tool that can exit 0 after a failure, how a complete dump looks;
    one that does not look so fails the run, so the archive holding it is never kept.
    `preamble`: the command runs over SSH (sources/remote.py's `command_on`): its
    standard error counts from TOOL_STARTS (DumpProcess) and its output from
    OUTPUT_MARK, what a login shell printed before either left out."""
    mark = completion.spoken if completion is not None else ""
    dump = DumpProcess(argv, env, label, feed=feed, mark=mark, preamble=preamble)
    assert dump.stdout is not None  # noqa: S101 - an output was asked for
    try:
        stream: IO[bytes] = dump.stdout
        after = None
        if preamble:
            after = _AfterMark(stream)
            stream = cast(IO[bytes], after)
        watched = None
        if completion is not None:
            watched = _Watched(stream, completion)
            stream = cast(IO[bytes], watched)
        for entry in iter_parts(name, stream, part_size=part_size):
            dump.log_errors(reporter)
            yield entry
        dump.finish(reporter)
        if after is not None and after.missing:
            raise DumpFailed(f"{label} did not run: {NOT_THE_TOOL}", 0, [])
        if after is not None and after.skipped:
            reporter.note(
                f"{label}: left out {after.skipped} bytes the SSH host's login shell printed"
                " on standard output before the tool started"
            )
        if watched is not None and (why := watched.failure(dump)):
            raise DumpFailed(f"{label} did not complete the dump: {why}", 0, [])
    finally:
        dump.stop()


class DumpSource:
    """A source whose entries come from dump commands: `dumps` yields them, and `close`
    ends a dump still running when the backup stopped early (cancelled, or a destination
    failed), at once rather than when the generator is collected."""

    _entries: Generator[Entry, None, None] | None = None

    def dumps(self, reporter: Reporter) -> Generator[Entry, None, None]:
        raise NotImplementedError

    def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
        self._entries = self.dumps(reporter)
        return self._entries

    def close(self) -> None:
        if self._entries is not None:
            self._entries.close()  # GeneratorExit at its yield: the dump's finally kills it


@dataclass
class Probe:
    """What "Test connection" shows for a MariaDB, SQLite or Redis source."""

    ok: bool
    message: str
    server_version: str = ""
    databases: list[str] = field(default_factory=list)
    dump_tool: str = ""
    """The dump tool's `--version` line on this worker ("" when it is missing)."""
