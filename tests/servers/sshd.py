"""OpenSSH ``sshd`` for tests, with a throwaway config, host key and users.

The server listens on a free loopback port with its own config, host key,
pid file and authorized-keys files in a temporary directory; it never reads
``/etc/ssh`` or anyone's home directory. It needs root: it creates (or
reuses) three system users and resets their credentials each session:

``password``        ``mkp_pw``: logs in with a password.
``key``             ``mkp_key``: logs in with an ed25519 key, no passphrase.
``key_passphrase``  ``mkp_kpp``: logs in with an RSA key protected by a passphrase.

The password user's password is one per machine (kept in ``PASSWORD_FILE``), so
two pytest sessions running at once do not reset each other's logins.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from tests.servers.ports import LOOPBACK, free_port, read_banner
from tests.servers.process import ManagedProcess, freeze_descendants, kill_pids

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
START_TIMEOUT = 20.0
USERNAMES = {"password": "mkp_pw", "key": "mkp_key", "key_passphrase": "mkp_kpp"}
PASSWORD_FILE = Path("/var/lib/mackuper-test/mkp_pw.password")


class SSHUser(NamedTuple):
    """Credentials of a test user; unpacks as (username, password, private_key, passphrase)."""

    username: str
    password: str | None
    private_key: str | None
    """The private key file's text (OpenSSH format), or None."""
    passphrase: str | None


@dataclass
class SSHServer:
    """A running ``sshd`` and everything a test needs to log in to it."""

    host: str
    port: int
    host_key_fingerprint: str
    """``SHA256:...`` exactly as ``ssh-keygen -lf`` prints it."""
    host_public_key: str
    """``ssh-ed25519 AAAA...`` (key type and base64 blob, no comment)."""
    users: dict[str, SSHUser]
    work_dir: Path
    process: ManagedProcess = field(repr=False, compare=False)

    def known_hosts_line(self) -> str:
        """Return the line an OpenSSH ``known_hosts`` file needs for this server."""
        return f"[{self.host}]:{self.port} {self.host_public_key}"

    def is_running(self) -> bool:
        """Return True while the listening sshd process is alive."""
        return self.process.is_running()

    def stop(self, drop_connections: bool = True) -> None:
        """Stop sshd, by default also killing its open sessions (a crash).

        sshd puts each connection in a new session, so they survive the
        listener unless ``drop_connections`` kills them explicitly.
        """
        pid = self.process.pid
        if pid is not None and drop_connections:
            # The listener is paused first, so no new session starts while the
            # sessions are found; all die together, and stop() reaps the listener.
            kill_pids([pid], signal.SIGSTOP)
            kill_pids([pid, *freeze_descendants(pid)], signal.SIGKILL)
        self.process.stop()

    def start(self) -> None:
        """(Re)start sshd on the same port and wait until it sends its banner."""
        if self.is_running():
            return
        self.process.start()
        self.process.wait_ready(self.answers, timeout=START_TIMEOUT)

    def answers(self) -> bool:
        """Return True when the port answers with an SSH banner."""
        return read_banner(self.port, self.host).startswith(b"SSH-")

    def key_path(self, role: str) -> Path:
        """Return the private key file (mode 0600, owned by root) of a key user."""
        return self.work_dir / "keys" / self.users[role].username

    def make_remote_tree(self, username: str, files: Mapping[str, bytes | str]) -> Path:
        """Create a directory owned by ``username`` holding ``files``; return its path.

        ``files`` maps relative paths to contents; parent directories are
        made. The server runs on this machine, so the path is also the path
        to use over SSH. It is removed with the server's work directory.
        """
        root = Path(tempfile.mkdtemp(prefix="tree-", dir=self.work_dir / "trees"))
        for relative, content in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            path.write_bytes(data)
        chown_tree(root, username)
        return root


def chown_tree(root: Path, username: str) -> None:
    """Give ``root`` and everything under it to ``username``."""
    entry = pwd.getpwnam(username)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(Path(dirpath) / name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def run(argv: list[str], stdin: str | None = None) -> str:
    """Run a setup command; raise with its output if it fails; return stdout."""
    result = subprocess.run(  # noqa: S603 - fixed commands built here
        argv, input=stdin, capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def generate_key(path: Path, key_type: str, passphrase: str = "", comment: str = "") -> None:
    """Write a new key pair (``path`` and ``path.pub``) with ``ssh-keygen``."""
    bits = ["-b", "3072"] if key_type == "rsa" else []
    run([SSH_KEYGEN, "-q", "-t", key_type, *bits, "-N", passphrase, "-C", comment, "-f", str(path)])


def fingerprint(public_key_path: Path) -> str:
    """Return the ``SHA256:...`` fingerprint ``ssh-keygen -lf`` prints for a key."""
    return run([SSH_KEYGEN, "-lf", str(public_key_path)]).split()[1]


def ensure_user(username: str) -> None:
    """Create system user ``username`` with a home and bash, unless it exists."""
    try:
        pwd.getpwnam(username)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/bash", username])


def set_password(username: str, password: str | None) -> None:
    """Set the user's password, or ``*`` (no password login, account not locked).

    With ``UsePAM no`` sshd refuses every login, keys included, to an account
    whose password field starts with ``!`` (what ``useradd`` leaves).
    """
    if password is None:
        run(["usermod", "--password", "*", username])
    else:
        run(["chpasswd"], stdin=f"{username}:{password}\n")


def machine_password() -> str:
    """Return the password user's password, creating it once per machine.

    Every session sets the same password, so sessions running side by side
    (a developer's and a helper's) keep working; the first writer wins a race.
    """
    PASSWORD_FILE.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return PASSWORD_FILE.read_text().strip()
    password = secrets.token_urlsafe(16)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def make_users(work_dir: Path) -> dict[str, SSHUser]:
    """Create or reset the three test users; write their authorized keys."""
    keys_dir = work_dir / "keys"
    auth_dir = work_dir / "authorized_keys"
    keys_dir.mkdir(mode=0o700)
    auth_dir.mkdir(mode=0o755)
    users: dict[str, SSHUser] = {}
    for role, username in USERNAMES.items():
        ensure_user(username)
        password = machine_password() if role == "password" else None
        set_password(username, password)
        private_key = passphrase = None
        authorized = ""
        if role != "password":
            passphrase = secrets.token_urlsafe(12) if role == "key_passphrase" else None
            key_path = keys_dir / username
            key_type = "rsa" if passphrase else "ed25519"
            generate_key(key_path, key_type, passphrase or "", comment=f"{username}@mackuper-test")
            private_key = key_path.read_text()
            authorized = key_path.with_suffix(".pub").read_text()
        auth_file = auth_dir / username
        auth_file.write_text(authorized)
        auth_file.chmod(0o644)
        users[role] = SSHUser(username, password, private_key, passphrase)
    return users


def sshd_config(work_dir: Path, port: int, host_key: Path) -> str:
    """Return an sshd_config that only uses files in ``work_dir``."""
    return "\n".join(
        [
            f"Port {port}",
            f"ListenAddress {LOOPBACK}",
            f"HostKey {host_key}",
            f"PidFile {work_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {work_dir / 'authorized_keys'}/%u",
            "StrictModes no",
            "UsePAM no",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin no",
            f"AllowUsers {' '.join(USERNAMES.values())}",
            "Subsystem sftp internal-sftp",
            "UseDNS no",
            "PrintMotd no",
            "X11Forwarding no",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "LogLevel VERBOSE",
            "",
        ]
    )


@contextlib.contextmanager
def running_sshd() -> Iterator[SSHServer]:
    """Start a throwaway sshd; stop it and remove its directory afterwards."""
    if os.geteuid() != 0:
        raise RuntimeError("the sshd fixture must run as root (it creates system users)")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="mkp-sshd-"))
    try:
        # Users must reach their authorized_keys files and remote trees.
        work_dir.chmod(0o755)
        (work_dir / "trees").mkdir(mode=0o755)
        host_key = work_dir / "ssh_host_ed25519_key"
        generate_key(host_key, "ed25519", comment="mackuper-test-host")
        users = make_users(work_dir)
        port = free_port()
        config = work_dir / "sshd_config"
        config.write_text(sshd_config(work_dir, port, host_key))
        run([str(SSHD), "-t", "-f", str(config)])
        public = host_key.with_suffix(".pub")
        server = SSHServer(
            host=LOOPBACK,
            port=port,
            host_key_fingerprint=fingerprint(public),
            host_public_key=" ".join(public.read_text().split()[:2]),
            users=users,
            work_dir=work_dir,
            process=ManagedProcess(
                "sshd", [str(SSHD), "-D", "-e", "-f", str(config)], work_dir / "sshd.log"
            ),
        )
        try:
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
