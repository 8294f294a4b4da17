"""Run a server as a child process, wait until it answers, stop it for sure."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOG_LIMIT_CHARS = 6000


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries its log."""


class ManagedProcess:
    """One server process whose stdout and stderr go to a log file.

    Output goes to a file rather than a pipe so a chatty server never blocks
    on a full pipe, and so its log can be shown when it fails to start.
    The process runs in its own session (process group), so :meth:`stop`
    also reaches the helpers it forks in that group.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_leader_only: bool = False,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_signal = stop_signal
        # Like tini in a container: the leader alone hears the stop signal and must
        # stop its own children; whatever is left is killed once it has exited.
        self.stop_leader_only = stop_leader_only
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id while started, else None."""
        return self.popen.pid if self.popen is not None else None

    def start(self) -> None:
        """Start the process (appending to its log file)."""
        if self.is_running():
            return
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(  # noqa: S603 - argv is built by the test fixtures
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    def is_running(self) -> bool:
        """Return True while the process has been started and has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def log_text(self, limit: int = LOG_LIMIT_CHARS) -> str:
        """Return the process's log, its middle cut out when longer than ``limit``.

        Both ends matter: a failing server often prints the error first and
        a long usage text after it.
        """
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        if len(text) <= limit:
            return text
        head = limit // 3
        return f"{text[:head]}\n[...]\n{text[-(limit - head) :]}"

    def stop(self, timeout: float = 10.0) -> int | None:
        """Signal the process group with ``stop_signal``; kill it after ``timeout`` seconds.

        Returns the leader's exit code (negative: killed by that signal), or None if
        it was never started.
        """
        popen = self.popen
        if popen is None:
            return None
        if popen.poll() is None:
            if self.stop_leader_only:
                popen.send_signal(self.stop_signal)
            else:
                _signal_group(popen.pid, self.stop_signal)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(popen.pid, signal.SIGKILL)
                popen.wait(timeout=timeout)
        # Helpers left in the group after the leader exited.
        _signal_group(popen.pid, signal.SIGKILL)
        self.popen = None
        return popen.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group now and reap the leader."""
        popen = self.popen
        if popen is None:
            return
        _signal_group(popen.pid, signal.SIGKILL)
        popen.wait()
        self.popen = None

    def wait_ready(
        self, is_ready: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1
    ) -> None:
        """Poll ``is_ready`` until it returns True.

        Raises :class:`ServerStartError` with the server's log if the process
        exits first or ``timeout`` seconds pass.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                code = self.popen.returncode if self.popen is not None else None
                raise ServerStartError(
                    f"{self.name} exited with code {code} before it was ready.\n"
                    f"command: {' '.join(self.argv)}\nlog:\n{self.log_text()}"
                )
            if is_ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.name} was not ready after {timeout:.0f}s.\n"
                    f"command: {' '.join(self.argv)}\nlog:\n{self.log_text()}"
                )
            time.sleep(interval)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to process group ``pgid``; ignore a group that is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def child_pids(pid: int) -> list[int]:
    """Return the ids of the direct children of ``pid`` (from /proc)."""
    children: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # Field 4 is the parent id; the command name (field 2) may hold spaces.
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def descendant_pids(pid: int) -> list[int]:
    """Return the ids of all descendants of ``pid``, parents before children."""
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in child_pids(queue.pop(0)):
            found.append(child)
            queue.append(child)
    return found


def freeze_descendants(pid: int) -> list[int]:
    """SIGSTOP every descendant of ``pid`` and return their ids, parents before children.

    A stopped process cannot fork, so rescanning until nothing new appears also
    catches a child forked while the tree was being read (sshd forks a session's
    post-authentication process just after the client hears it is logged in; a
    plain scan could miss it and leave the connection up). SIGKILL ends them stopped.
    """
    frozen: list[int] = []
    while True:
        fresh = [child for child in descendant_pids(pid) if child not in frozen]
        if not fresh:
            return frozen
        kill_pids(fresh, signal.SIGSTOP)
        frozen.extend(fresh)


def kill_pids(pids: Sequence[int], sig: signal.Signals = signal.SIGKILL) -> None:
    """Send ``sig`` to each of ``pids``; ignore those that are gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
