"""Driving the `age` CLI, which reads passphrases only from a terminal, through a pty."""

from __future__ import annotations

import os
import pty
import select
import signal
import time


def run_with_tty(argv: list[str], answers: list[str], timeout: float = 120.0) -> tuple[int, str]:
    """Run `argv` with a pty as its controlling terminal, typing `answers` at each prompt.

    Returns (exit code, what the terminal showed).
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.execvp(argv[0], argv)  # noqa: S606 - a fixed test command
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            seen += data
            prompts = seen.lower().count(b"passphrase")
            if pending and prompts > len(answers) - len(pending):
                os.write(fd, pending.pop(0).encode() + b"\r")
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")
