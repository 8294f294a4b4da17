"""Remotes for the rclone destination: a directory served by rclone itself over
SFTP or WebDAV on a loopback port, with a user and password.

Each is a different rclone backend on the client side (``sftp``, ``webdav``); the
S3 one is ``tests.servers.s3.running_rclone``. Objects are plain files under
:attr:`RcloneRemote.data_dir`, so a test can plant and read them directly.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.ports import LOOPBACK, free_port, port_is_open, read_banner
from tests.servers.process import ManagedProcess
from tests.servers.s3 import rclone_binary, server_env

START_TIMEOUT = 30.0


@dataclass
class RcloneRemote:
    """A running ``rclone serve <protocol>`` and what a client's settings need."""

    protocol: str
    """``sftp`` or ``webdav``: also the client's rclone backend type."""
    port: int
    user: str
    password: str
    data_dir: Path
    process: ManagedProcess = field(repr=False, compare=False)

    def settings(self) -> tuple[dict[str, str], dict[str, str]]:
        """The rclone backend's (options, secret options) that reach this server."""
        if self.protocol == "sftp":
            options = {"host": LOOPBACK, "port": str(self.port), "user": self.user}
            # The host key is rclone's fresh one each start: the test trusts any.
            return options, {"pass": self.password}
        options = {"url": f"http://{LOOPBACK}:{self.port}", "vendor": "other", "user": self.user}
        return options, {"pass": self.password}

    def is_running(self) -> bool:
        return self.process.is_running()

    def stop(self) -> None:
        self.process.stop()

    def start(self) -> None:
        if self.is_running():
            return
        self.process.start()
        self.process.wait_ready(self.answers, timeout=START_TIMEOUT)

    def answers(self) -> bool:
        if self.protocol == "sftp":
            return read_banner(self.port, LOOPBACK).startswith(b"SSH-")
        if not port_is_open(self.port, LOOPBACK):
            return False
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, self.port), 2) as s:
            s.sendall(b"OPTIONS / HTTP/1.0\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/")
        return False


@contextlib.contextmanager
def running_remote(protocol: str) -> Iterator[RcloneRemote]:
    """Start ``rclone serve <protocol>`` over a temp directory; stop and remove it after."""
    work_dir = Path(tempfile.mkdtemp(prefix=f"mkp-rclone-{protocol}-"))
    try:
        data_dir = work_dir / "data"
        tmp_dir = work_dir / "tmp"
        for directory in (data_dir, tmp_dir, work_dir / "cache"):
            directory.mkdir()
        port = free_port()
        user, password = "mackuper", secrets.token_hex(12)
        command = [
            str(rclone_binary()),
            "serve",
            protocol,
            str(data_dir),
            "--addr",
            f"{LOOPBACK}:{port}",
            "--user",
            user,
            "--pass",
            password,
            "--vfs-cache-mode",
            "off",
            "--config",
            "",
            "--cache-dir",
            str(work_dir / "cache"),
            "--log-level",
            "INFO",
        ]
        process = ManagedProcess(
            f"rclone serve {protocol}",
            command,
            work_dir / "rclone.log",
            env=server_env(tmp_dir),
            cwd=work_dir,
        )
        remote = RcloneRemote(protocol, port, user, password, data_dir, process)
        try:
            remote.start()
            yield remote
        finally:
            remote.stop()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
