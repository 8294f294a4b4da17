"""Helpers for the SSH source tests: remote trees the test users own, and backups of them."""

from __future__ import annotations

import contextlib
import pwd
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.run import BackupPlan, BackupResult, run_backup
from mackuper.sources.ssh import SSHSource
from mackuper.ssh import HostKey, SSHError, SSHTarget, connect
from tests.integration.engine_support import RecordingHooks, make_every_kind_tree
from tests.servers.sshd import SSHServer, chown_tree


def every_kind_remote_tree(server: SSHServer, username: str) -> Path:
    """make_every_kind_tree in a directory the user owns and sshd's users can reach."""
    root = Path(tempfile.mkdtemp(prefix="every-", dir=server.work_dir / "trees"))
    root.chmod(0o755)
    make_every_kind_tree(root / "tree")
    chown_tree(root, username)
    return root / "tree"


def target_for(server: SSHServer, role: str, **overrides: Any) -> SSHTarget:
    user = server.users[role]
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "username": user.username,
        "auth": "password" if role == "password" else "key",
        "host_key": HostKey.parse(server.host_public_key),
        "password": user.password or "",
        "private_key": user.private_key or "",
        "passphrase": user.passphrase or "",
    }
    values.update(overrides)
    return SSHTarget(**values)


def ssh_backup(
    source: SSHSource, output: Path, hooks: RecordingHooks | None = None
) -> tuple[BackupResult, RecordingHooks, Path]:
    """Back up `source` as plain tar into `output`; return the result and the archive path."""
    hooks = hooks or RecordingHooks()
    output.mkdir(parents=True, exist_ok=True)
    plan = BackupPlan(
        job_id=3,
        job_slug="ssh-test",
        job_name="SSH test",
        run_id=5,
        archive_format="tar",
        compression_level=None,
        source=source,
        destinations={1: LocalDestination(str(output))},
        started_at=datetime.now(UTC),
    )
    result = run_backup(plan, hooks)
    archives = [path for path in output.rglob("*.tar")]
    return result, hooks, archives[0]


def sshd_log_size(server: SSHServer) -> int:
    return (server.work_dir / "sshd.log").stat().st_size


def sshd_log_since(server: SSHServer, offset: int) -> str:
    return (server.work_dir / "sshd.log").read_bytes()[offset:].decode(errors="replace")


def prove_logins_are_logged(server: SSHServer, role: str) -> None:
    """Log in as `role` (and, for a password user, fail once) and wait until sshd's log
    shows both, so a test that finds no login in that log knows none happened, rather
    than that the log does not record them."""
    username = server.users[role].username
    start = sshd_log_size(server)
    connect(target_for(server, role)).close()
    expected = ["Accepted password for" if role == "password" else "Accepted publickey for"]
    if role == "password":
        with pytest.raises(SSHError, match="authentication failed"):
            connect(target_for(server, role, password="not-the-password")).close()
        expected.append("Failed password for")
    deadline = time.monotonic() + 10
    while not all(f"{words} {username}" in sshd_log_since(server, start) for words in expected):
        assert time.monotonic() < deadline, sshd_log_since(server, start)
        time.sleep(0.05)


GREETINGS = {
    **{
        stream: f'echo "welcome to the build host" >&{number}\n'.encode()
        for stream, number in (("stdout", 1), ("stderr", 2))
    },
    "flood": b"head -c 300000 /dev/zero | tr '\\0' x\n",
    "forced": b'echo "backup menu: nothing else runs here"; exit 0\n',
}
"""~/.bashrc lines: a greeting on either stream, 300 kB on standard output, and a
login that runs nothing but its own menu and exits 0 (as a forced command does)."""


@contextlib.contextmanager
def noisy_login(sshd: SSHServer, role: str, stream: str = "stderr") -> Iterator[None]:
    """The user's ~/.bashrc writes a line to standard error (or output), as some do: bash
    reads it for every command sshd runs, so it comes before anything the command writes."""
    rc = Path(pwd.getpwnam(sshd.users[role].username).pw_dir) / ".bashrc"
    greeting = GREETINGS[stream]
    before = rc.read_bytes() if rc.exists() else None
    if before in GREETINGS.values():  # left by a run killed inside this block: the default
        skel = Path("/etc/skel/.bashrc")
        before = skel.read_bytes() if skel.exists() else None
    rc.write_bytes(greeting)
    try:
        yield
    finally:
        if before is None:
            rc.unlink()
        else:
            rc.write_bytes(before)
