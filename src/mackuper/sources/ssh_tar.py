"""A remote GNU `tar` streamed over the OpenSSH client, re-emitted entry by entry.

The OpenSSH client moves bytes about 2.5 times faster than paramiko here (see
docs/benchmarks.md), so tar mode runs `ssh` as a child process (mackuper/ssh.py's
OpenSSHSession). Its settings all come from the command line (`-F /dev/null`): the
pinned host key in a private known_hosts file under an alias, the private key in a
0600 file, and the password or passphrase handed to `ssh` through SSH_ASKPASS from
its environment, never on disk. Everything lives in a 0700 directory removed on close.

When the connection breaks after the first member, the remote tar is started again
(with backoff, for up to the target's `retry_seconds`) and its stream is read up to
where the archive writer is: members already handed on are skipped, and the member
in progress resumes at its first byte not yet handed on, so the archive comes out
as without the outage. The skipped bytes cross the network again; a tree that
changed meanwhile so that this position cannot be found fails the run. A server
that cannot be reached before the first member fails at once, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import IO, BinaryIO, cast

from mackuper.core.outage import Outage
from mackuper.core.snar import SnapshotError, check, without_devices
from mackuper.sources.base import Entry, EntryType, Reporter
from mackuper.sources.tar_stream import (
    BUFFER,
    DIRECTORY,
    HARDLINK,
    SYMLINK,
    Member,
    StartNotFound,
    TarStreamError,
    TarStreamReader,
)
from mackuper.ssh import (
    OUTPUT_MARK,
    SAY_STARTS,
    SSH,
    TOOL_STARTS,
    OpenSSHSession,
    SSHError,
    SSHTarget,
    SSHUnreachable,
    connection_error,
)

PIPE_BUFFER = 1 << 20  # what an unprivileged process may ask for (fs.pipe-max-size)
PIPE_BUFFER_LARGE = 8 << 20  # granted to root
F_SETPIPE_SZ = 1031
EXIT_NO_TEMP, EXIT_MISSING, EXIT_UNREADABLE, EXIT_NO_TAR = 96, 97, 98, 99
SNAPSHOT_MARKER = b"mackuper-snapshot\n"
"""What precedes the rewritten snapshot after the archive's end (incremental only)."""
MAX_SNAPSHOT = 1 << 30
"""The largest snapshot read back (a tree of millions of directories stays far below)."""


class NoRemoteTar(SSHError):
    """The server has no GNU tar (or runs no commands); SFTP can still work."""


def openssh_available() -> bool:
    return shutil.which(SSH) is not None


def remote_script(paths: Sequence[str], incremental: bool = False) -> str:
    """A POSIX shell command: say TOOL_STARTS on standard error and OUTPUT_MARK on
    standard output (what a login shell printed comes before them), check every path,
    then stream them with GNU tar.

    `incremental`: GNU tar runs with `--listed-incremental` on a snapshot file read
    from standard input (empty for a full) into a private directory (mktemp -d, 0700;
    the file 0600), which is removed when the command ends, however it ends. After
    the archive, when tar ended well (exit 0 or 1), the rewritten snapshot follows on
    standard output behind SNAPSHOT_MARKER (core/snar.py).
    """
    quoted = " ".join(shlex.quote(path) for path in paths)
    relative = " ".join(shlex.quote(path.lstrip("/") or ".") for path in paths)
    checks = (
        f"{SAY_STARTS} for p in {quoted}; do"
        f' if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo "mackuper-missing: $p" >&2;'
        f" exit {EXIT_MISSING}; fi;"
        f' if [ ! -r "$p" ]; then echo "mackuper-unreadable: $p" >&2; exit {EXIT_UNREADABLE};'
        " fi; done;"
        " if ! tar --version 2>/dev/null | grep -q 'GNU tar'; then"
        f' echo "mackuper-no-gnu-tar" >&2; exit {EXIT_NO_TAR}; fi;'
    )
    tar = "tar --format=posix --pax-option=delete=atime,delete=ctime --numeric-owner -b 2048"
    if not incremental:
        return f"{checks} exec {tar} -cf - -C / -- {relative}"
    marker = SNAPSHOT_MARKER.decode().strip()
    return (
        f"{checks} umask 077; d=$(mktemp -d) || {{ echo 'mackuper-no-temp' >&2;"
        f" exit {EXIT_NO_TEMP}; }};"
        " trap 'rm -rf \"$d\"' EXIT; trap 'exit 129' HUP INT TERM PIPE;"
        f' cat > "$d/s" || exit {EXIT_NO_TEMP}; [ -s "$d/s" ] || rm -f "$d/s";'
        f' {tar} --no-check-device --listed-incremental="$d/s" -cf - -C / -- {relative};'
        f' c=$?; if [ "$c" -le 1 ]; then printf \'%s\\n\' {marker}; cat "$d/s" || exit 2; fi;'
        ' exit "$c"'
    )


class _MemberReader:
    """The current member's bytes; a broken stream is resumed (or the run fails)."""

    def __init__(self, stream: TarStream) -> None:
        self.stream = stream

    def readinto(self, buffer: memoryview) -> int:
        return self.stream.read_member(buffer)

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(size if size >= 0 else 1 << 20)
        count = self.readinto(memoryview(buffer))
        return bytes(buffer[:count])

    def __enter__(self) -> _MemberReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


class TarStream:
    """Runs the remote tar and yields its members as entries, strictly in order."""

    def __init__(
        self, target: SSHTarget, paths: Sequence[str], snapshot: bytes | None = None
    ) -> None:
        self.target = target
        self.paths = list(paths)
        self.snapshot = without_devices(snapshot) if snapshot else snapshot
        """For an incremental chain: the snapshot GNU tar starts from (b"" for a full)."""
        self.new_snapshot: bytes | None = None
        """The snapshot the remote tar rewrote, once it ended well (incremental only)."""
        self.session: OpenSSHSession | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr_lines: list[str] = []
        self.stderr_reader: threading.Thread | None = None
        self.reader: TarStreamReader | None = None
        self.finished: set[str] = set()
        """Members handed on whole (skipped when the stream is started again)."""
        self.current: str | None = None
        """The member being read, of which `delivered` bytes were handed on."""
        self.delivered = 0
        self.resumed: list[Member | None] = []
        """The member a restarted stream stopped at, when that was between members."""
        self.reconnects = 0

    def open_member(self) -> BinaryIO:
        """A file entry's opener: the current member's bytes."""
        return cast("BinaryIO", _MemberReader(self))

    def _start(self) -> subprocess.Popen[bytes]:
        self.stderr_lines = []
        self.session = OpenSSHSession(self.target)
        incremental = self.snapshot is not None
        argv = [*self.session.argv, remote_script(self.paths, incremental)]
        process = subprocess.Popen(  # noqa: S603 - argv built above, no shell
            argv,
            stdin=subprocess.PIPE if incremental else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.session.env,
            bufsize=0,
            start_new_session=True,
        )
        self.process = process
        self.stderr_reader = threading.Thread(
            target=self._drain, args=(process.stderr,), name="ssh-stderr", daemon=True
        )
        self.stderr_reader.start()
        if process.stdin is not None:
            # Read by the remote `cat` into its private file before tar starts, so
            # nothing comes back on stdout meanwhile; a remote that exits first (no
            # GNU tar, a missing path) closes the pipe: its exit code says why.
            with contextlib.suppress(OSError):
                process.stdin.write(self.snapshot or b"")
            with contextlib.suppress(OSError):
                process.stdin.close()
        return process

    def _drain(self, pipe: IO[bytes] | None) -> None:
        if pipe is None:
            return
        for raw in pipe:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def _finish(self) -> int:
        if self.process is None:
            return 255
        code = self.process.wait()
        if self.stderr_reader is not None:
            self.stderr_reader.join(timeout=5)
        return code

    def _said(self) -> list[str]:
        """The remote command's standard error lines: those after TOOL_STARTS (a login
        shell's greeting comes before it), or all when it never came (ssh failed)."""
        lines = self.stderr_lines
        return lines[lines.index(TOOL_STARTS) + 1 :] if TOOL_STARTS in lines else lines

    def _failure(self, code: int) -> SSHError:
        said = self._said()
        stderr = "\n".join(said)
        for line in said:
            if line.startswith("mackuper-missing: "):
                return SSHError(f"remote path {line.split(': ', 1)[1]} does not exist")
            if line.startswith("mackuper-unreadable: "):
                path = line.split(": ", 1)[1]
                return SSHError(f"remote path {path} is not readable (permission denied)")
        if "mackuper-no-temp" in stderr:
            return SSHError(
                f"{self.target.host} could not make a private temporary directory (mktemp -d)"
                " for GNU tar's snapshot file"
            )
        if "mackuper-no-gnu-tar" in stderr:
            return NoRemoteTar(f"{self.target.host} has no GNU tar; use SFTP transfer")
        if code == 255:
            return connection_error(self.target, stderr)
        return NoRemoteTar(f"{self.target.host} did not run tar (exit {code}): {stderr[:200]}")

    def _open_reader(self) -> TarStreamReader:
        process = self._start()
        if process.stdout is None:
            raise SSHError("ssh could not be started")
        fd = process.stdout.fileno()
        for size in (PIPE_BUFFER_LARGE, PIPE_BUFFER):  # room for ssh while we hash and write
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, F_SETPIPE_SZ, size)
                break
        self.reader = TarStreamReader(fd, after=OUTPUT_MARK)
        return self.reader

    def entries(self, reporter: Reporter) -> Iterator[Entry]:
        """Entries of the remote tar; raises NoRemoteTar before the first one if unusable."""
        self._open_reader()
        count = 0
        while True:
            member = self._next_member(started=count > 0)
            if member is None:
                break
            count += 1
            entry = _entry(self, member, reporter)
            if entry is not None:
                yield entry
        stream = self._reader()
        rest: bytes | None = b""
        try:
            if self.snapshot is None:
                ended = stream.drain()
            else:
                rest = stream.rest(MAX_SNAPSHOT)
                ended = rest is not None
        except OSError:
            ended, rest = True, None
        if not ended:
            raise SSHError(f"{self.target.host} kept sending data after the end of the archive")
        code = self._finish()
        if code == 255 or (code not in (0, 1, 2)):
            raise self._failure(code)
        if stream.skipped:
            reporter.note(
                f"{self.target.host}: left out {stream.skipped} bytes the login shell printed"
                " on standard output before tar started"
            )
        said = self._said()
        for line in said:
            if "socket ignored" in line:
                reporter.note(f"{self.target.host}: {line}")
            elif line.startswith("tar: "):
                reporter.problem(f"{self.target.host}: {line[5:]}")
        if code != 0 and not any(line.startswith("tar: ") for line in said):
            raise self._failure(code)
        if count == 0:
            raise self._failure(code)
        if self.snapshot is not None:
            self.new_snapshot = _snapshot_after(rest) if code in (0, 1) else None
            if self.new_snapshot is None:
                reporter.problem(
                    f"{self.target.host}: GNU tar's snapshot could not be read back; the next"
                    " backup of this job is a full"
                )

    def _reader(self) -> TarStreamReader:
        if self.reader is None:
            raise SSHError("the remote tar was not started")
        return self.reader

    def _next_member(self, *, started: bool) -> Member | None:
        """The next member, from a stream started again if this one broke."""
        if self.current is not None:
            self.finished.add(self.current)
        self.current, self.delivered = None, 0
        outage: Outage | None = None
        while True:
            if self.resumed:
                member = self.resumed.pop()
            else:
                try:
                    member = self._reader().next()
                except StartNotFound:
                    raise SSHError(
                        f"{self.target.host} printed over {BUFFER >> 10} KiB on standard output"
                        " before tar started (its login shell's greeting?)"
                    ) from None
                except (TarStreamError, OSError):
                    error = self._stream_error(started=started)
                    if not started:
                        raise error from None
                    outage = outage or Outage(self.target.retry_seconds)
                    self._resume(error, outage)
                    continue
            if member is not None:
                self.current = member.name
            return member

    def read_member(self, buffer: memoryview) -> int:
        """Bytes of the current member into `buffer`, resumed over a new stream if needed."""
        outage: Outage | None = None
        while True:
            try:
                count = self._reader().readinto(buffer)
            except (TarStreamError, OSError):
                outage = outage or Outage(self.target.retry_seconds)
                self._resume(self._stream_error(started=True), outage)
                continue
            self.delivered += count
            return count

    def _resume(self, error: SSHError, outage: Outage) -> None:
        """Start the remote tar again and read it up to where the archive writer is.

        Raises `error` when it is not an outage (a changed host key, a refused
        login), and SSHError when the stream cannot be resumed within the budget.
        """
        while True:
            if not error.retryable:
                raise error
            if not outage.pause():
                raise SSHError(
                    f"the connection to {self.target.host}:{self.target.port} was lost"
                    f" ({error}) and could not be made again within"
                    f" {self.target.retry_seconds:.0f} s"
                )
            self._stop()
            reader = self._open_reader()
            try:
                self._skip_to_position(reader)
            except (TarStreamError, OSError):
                error = self._stream_error(started=False)
                continue
            self.reconnects += 1
            return

    def _skip_to_position(self, reader: TarStreamReader) -> None:
        """Skip what was handed on already; raises SSHError when the tree changed so
        that the position is not in the new stream."""
        while True:
            member = reader.next()
            if member is not None and member.name in self.finished:
                continue
            if self.current is None:  # the break came between two members
                self.resumed = [member]
                return
            if member is None or member.name != self.current:
                raise SSHError(
                    f"the files on {self.target.host} changed while the connection was made"
                    f" again: /{self.current} is no longer where the stream stopped"
                )
            scratch = memoryview(bytearray(1 << 20))
            left = self.delivered
            while left:
                count = reader.readinto(scratch[: min(left, len(scratch))])
                if not count:
                    raise SSHError(f"/{self.current} shrank while the connection was made again")
                left -= count
            return

    def _stop(self) -> None:
        """End the current ssh process and its session (before starting another)."""
        self.close()
        self.process = None
        self.stderr_reader = None
        self.reader = None

    def _stream_error(self, *, started: bool) -> SSHError:
        """Why the stream broke: ssh's own failure when it exited with one, else a lost link."""
        lost = SSHUnreachable(f"the connection to {self.target.host} was lost during the transfer")
        if self.process is None:
            return lost
        try:
            code = self.process.wait(timeout=self.target.keepalive * 4)
        except subprocess.TimeoutExpired:
            if started:
                return lost
            return SSHError(f"{self.target.host} sent something that is not a tar stream")
        if self.stderr_reader is not None:
            self.stderr_reader.join(timeout=5)
        return self._failure(code) if code == 255 or not started else lost

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.stderr_reader is not None:
            self.stderr_reader.join(timeout=5)
        for pipe in (self.process.stdout, self.process.stderr) if self.process else ():
            if pipe is not None:
                pipe.close()
        if self.session is not None:
            self.session.close()
            self.session = None


def _snapshot_after(rest: bytes | None) -> bytes | None:
    """The snapshot file the remote script sends after the archive, or None."""
    if rest is None:
        return None
    rest = rest.lstrip(b"\0")  # the end of the archive's last record
    if not rest.startswith(SNAPSHOT_MARKER):
        return None
    snapshot = rest[len(SNAPSHOT_MARKER) :]
    try:
        check(snapshot)
    except SnapshotError:
        return None
    return snapshot


def _entry(stream: TarStream, member: Member, reporter: Reporter) -> Entry | None:
    name = member.name.removeprefix("./").rstrip("/")
    if not name or name == ".":
        return None
    kind, link, size = EntryType.DIRECTORY, "", 0
    opener: Callable[[], BinaryIO] | None = None
    if member.is_file:
        kind, size = EntryType.FILE, member.size
        opener = stream.open_member
    elif member.type == SYMLINK:
        kind, link = EntryType.SYMLINK, member.linkname
    elif member.type == HARDLINK:
        kind, link = EntryType.HARDLINK, member.linkname.removeprefix("./")
    elif member.type != DIRECTORY:
        reporter.note(f"skipped /{name}: fifos and devices are not backed up")
        return None
    return Entry(
        name=name,
        type=kind,
        size=size,
        mode=member.mode,
        mtime=member.mtime,
        uid=member.uid,
        gid=member.gid,
        link_target=link,
        open=opener,
        dumpdir=member.dumpdir,
    )
