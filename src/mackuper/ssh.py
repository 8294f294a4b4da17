"""SSH connection settings, pinned host keys and paramiko sessions, with plain errors.

Shared by SSH sources (sources/ssh*.py), SSH restores and SFTP destinations, so it
sits below both sources and destinations and raises its own errors; each side maps
them to its own hierarchy (a source's SourceError, a destination's DestinationError).

The host key is checked right after the key exchange and before any credential is
sent: a server whose key differs from the pinned one never sees a password.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mackuper.config import ConfigError, check_ssh_ciphers

CONNECT_TIMEOUT = 15.0
KEEPALIVE_SECONDS = 10
IO_TIMEOUT = 60.0

if TYPE_CHECKING:
    import paramiko

# paramiko is imported by the functions that use it, not here: this module's settings
# and errors are needed by every worker (runs/outcome.py), paramiko only by SFTP and
# "Test connection"; importing it costs ~10 MiB of RSS (issue 23's memory goal).


def _key_classes() -> tuple[type[paramiko.PKey], ...]:
    import paramiko

    return (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


# What paramiko negotiates for each pinned key type, so the server shows that key.
HOST_KEY_ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}


class SSHError(Exception):
    """The SSH server could not be used."""

    retryable = False


class SSHUnreachable(SSHError):
    """The SSH server could not be reached, or the connection broke; it may come back."""

    retryable = True


class HostKeyMismatch(SSHError):
    """The server's host key is not the pinned one."""


class HostKeyNotTrusted(SSHError):
    """No host key is pinned yet."""


def fingerprint(blob: bytes) -> str:
    """The `SHA256:...` fingerprint OpenSSH prints for a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class HostKey:
    type: str
    blob: bytes

    @classmethod
    def parse(cls, text: str) -> HostKey:
        """A key from `type base64 [comment]`; raises ValueError when it is not one."""
        parts = text.split()
        if len(parts) < 2 or parts[0] not in HOST_KEY_ALGORITHMS:
            raise ValueError("not an OpenSSH public key line")
        blob = base64.b64decode(parts[1], validate=True)
        length = int.from_bytes(blob[:4], "big")  # the blob starts with its type, an SSH string
        if blob[4 : 4 + length] != parts[0].encode():
            raise ValueError("the key's type does not match its data")
        return cls(parts[0], blob)

    @classmethod
    def of(cls, key: paramiko.PKey) -> HostKey:
        return cls(key.get_name().replace("-cert-v01@openssh.com", ""), key.asbytes())

    @property
    def line(self) -> str:
        return f"{self.type} {base64.b64encode(self.blob).decode()}"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)


@dataclass
class SSHTarget:
    """Where and how to log in; secrets live only in memory."""

    host: str
    port: int
    username: str
    auth: str
    host_key: HostKey | None
    password: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)
    passphrase: str = field(default="", repr=False)
    connect_timeout: float = CONNECT_TIMEOUT
    io_timeout: float = IO_TIMEOUT
    keepalive: int = KEEPALIVE_SECONDS
    retry_seconds: float = 0.0
    """How long a connection lost mid-run is made again before the run fails."""

    @classmethod
    def from_config(
        cls, config: dict[str, Any], secrets: dict[str, Any], retry_seconds: float = 0.0
    ) -> SSHTarget:
        pinned = str(config.get("host_key") or "")
        return cls(
            host=str(config.get("host", "")),
            port=int(config.get("port") or 22),
            username=str(config.get("username", "")),
            auth=str(config.get("auth", "password")),
            host_key=HostKey.parse(pinned) if pinned else None,
            password=str(secrets.get("password") or ""),
            private_key=str(secrets.get("private_key") or ""),
            passphrase=str(secrets.get("passphrase") or ""),
            retry_seconds=retry_seconds,
        )

    @property
    def address(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


def load_private_key(text: str, passphrase: str) -> paramiko.PKey:
    """The key in `text` (OpenSSH or PEM; Ed25519, ECDSA or RSA); raises SSHError."""
    import paramiko

    text = normalize_key_text(text)
    needs_passphrase = False
    for key_class in _key_classes():
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            needs_passphrase = True
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    if needs_passphrase and not passphrase:
        raise SSHError("the private key is protected by a passphrase; enter it")
    if needs_passphrase or "ENCRYPTED" in text or "aes256-ctr" in _openssh_header(text):
        raise SSHError("the private key could not be unlocked: wrong passphrase")
    raise SSHError("the private key is not an OpenSSH or PEM Ed25519, ECDSA or RSA key")


def _openssh_header(text: str) -> str:
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    try:
        return base64.b64decode(body)[:64].decode("latin-1")
    except ValueError:
        return ""


def normalize_key_text(text: str) -> str:
    """Key text as OpenSSH reads it: LF line ends and a final newline."""
    return text.replace("\r\n", "\n").strip() + "\n"


def _socket(target: SSHTarget) -> socket.socket:
    try:
        return socket.create_connection((target.host, target.port), timeout=target.connect_timeout)
    except socket.gaierror:
        raise SSHError(f"the host name {target.host} could not be resolved") from None
    except ConnectionRefusedError:
        raise SSHUnreachable(
            f"{target.host} refused the connection on port {target.port} (is sshd running?)"
        ) from None
    except TimeoutError:
        raise SSHUnreachable(
            f"connecting to {target.host}:{target.port} timed out"
            f" after {target.connect_timeout:.0f} s"
        ) from None
    except OSError as error:
        raise SSHUnreachable(
            f"cannot connect to {target.host}:{target.port}: {error.strerror or error}"
        ) from None


def mismatch_message(target: SSHTarget, offered: HostKey) -> str:
    pinned = target.host_key
    trusted = f"{pinned.type} {pinned.fingerprint}" if pinned else "another key"
    return (
        f"the host key of {target.host}:{target.port} changed: the server sent"
        f" {offered.type} {offered.fingerprint}, but {trusted}"
        " is trusted; nothing was sent. If the change is expected, test the connection"
        " and trust the new key."
    )


def open_transport(target: SSHTarget) -> tuple[paramiko.Transport, HostKey]:
    """A transport after key exchange, not yet authenticated, and the server's key."""
    import paramiko

    sock = _socket(target)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = target.connect_timeout
    transport.handshake_timeout = target.connect_timeout
    if target.host_key is not None:
        preferred = HOST_KEY_ALGORITHMS[target.host_key.type]
        options = transport.get_security_options()
        options.key_types = tuple(preferred) + tuple(
            name for name in options.key_types if name not in preferred
        )
    try:
        transport.start_client(timeout=target.connect_timeout)
    except (paramiko.SSHException, EOFError, OSError) as error:
        transport.close()
        if "banner" in str(error):
            raise SSHUnreachable(
                f"the connection to {target.host}:{target.port} timed out: no SSH greeting"
                f" within {target.connect_timeout:.0f} s"
            ) from None
        raise SSHUnreachable(
            f"{target.host}:{target.port} did not complete the SSH handshake ({error})"
        ) from None
    try:
        offered = HostKey.of(transport.get_remote_server_key())
    except paramiko.SSHException:
        transport.close()
        raise SSHUnreachable(
            f"the connection to {target.host}:{target.port} timed out during the SSH handshake"
            f" ({target.connect_timeout:.0f} s)"
        ) from None
    return transport, offered


def connect(target: SSHTarget) -> paramiko.Transport:
    """An authenticated transport to a server whose key is the pinned one; raises SSHError."""
    if target.host_key is None:
        raise HostKeyNotTrusted(
            f"no host key is trusted for {target.host}; test the connection and trust its key"
        )
    transport, offered = open_transport(target)
    try:
        if offered != target.host_key:
            raise HostKeyMismatch(mismatch_message(target, offered))
        authenticate(transport, target)
    except BaseException:
        transport.close()
        raise
    transport.set_keepalive(target.keepalive)
    return transport


def authenticate(transport: paramiko.Transport, target: SSHTarget) -> None:
    import paramiko

    failed = SSHError(f"authentication failed for {target.address} ({target.auth})")
    try:
        if target.auth == "key":
            key = load_private_key(target.private_key, target.passphrase)
            transport.auth_publickey(target.username, key)
        else:
            transport.auth_password(target.username, target.password)
    except paramiko.AuthenticationException:
        raise failed from None
    except (paramiko.SSHException, EOFError, OSError) as error:
        raise SSHUnreachable(
            f"the connection to {target.host} broke while logging in ({error})"
        ) from None
    if not transport.is_authenticated():
        raise failed


def open_sftp(transport: paramiko.Transport, target: SSHTarget) -> paramiko.SFTPClient:
    import paramiko

    try:
        sftp = paramiko.SFTPClient.from_transport(transport, window_size=1 << 26)
    except (paramiko.SSHException, EOFError, OSError) as error:
        raise SSHError(f"{target.host} does not offer SFTP ({error})") from None
    if sftp is None:
        raise SSHError(f"{target.host} does not offer SFTP")
    sftp.get_channel().settimeout(target.io_timeout)  # type: ignore[union-attr]
    return sftp


# The OpenSSH client, run as a child process (tar streams and database dumps on an SSH
# host): its settings all come from the command line (`-F /dev/null`): the pinned host
# key in a private known_hosts file under an alias, the private key in a 0600 file,
# and the password or passphrase handed to `ssh` through SSH_ASKPASS from its
# environment, never on disk or a command line.

SSH = "ssh"
ALIAS = "mackuper-pinned-host"
_ASKPASS = '#!/bin/sh\nprintf "%s\\n" "$MACKUPER_SSH_SECRET"\n'
_OFFERED = re.compile(
    r"(?:sent by the remote host is|key fingerprint is)\s+(SHA256:[A-Za-z0-9+/]+)"
)


AES_GCM_FIRST = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"


@functools.cache
def cpu_has_aes() -> bool:
    """Whether this CPU has AES instructions (x86 `aes` flag, ARMv8 `aes` feature)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return "aes" in line.split(":", 1)[-1].split()
    except OSError:
        return False
    return False


def preferred_ciphers() -> str | None:
    """The cipher order to ask for: AES-GCM first when the CPU accelerates it.

    OpenSSH prefers chacha20-poly1305, which is the faster choice without AES
    instructions; with them, AES-GCM moves the same bytes for about half the CPU at
    both ends (docs/benchmarks.md). `^` puts the two ahead of OpenSSH's own list, so a
    server that offers neither still connects. MACKUPER_SSH_CIPHERS overrides it (an
    OpenSSH `Ciphers` value; "default" keeps OpenSSH's order), for example for a
    source server without AES instructions.
    """
    try:
        configured = check_ssh_ciphers(os.environ)  # at start-up too; this guards other callers
    except ConfigError as error:
        raise SSHError(str(error)) from None
    if configured:
        return None if configured == "default" else configured
    return AES_GCM_FIRST if cpu_has_aes() else None


class OpenSSHSession:
    """The OpenSSH client's command line for one connection: the pinned host key, the
    login and the options in `argv` (run with `env`), and a private directory holding
    what `ssh` reads (known_hosts, the key, an askpass script), removed on close."""

    def __init__(self, target: SSHTarget) -> None:
        if target.host_key is None:
            raise HostKeyNotTrusted(
                f"no host key is trusted for {target.host}; test the connection and trust its key"
            )
        ciphers = preferred_ciphers()  # may refuse a bad setting: before any file is written
        self.directory = tempfile.mkdtemp(prefix="mackuper-ssh-")
        self.target = target
        self.env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
        self.argv = [SSH, "-F", "/dev/null", "-T", "-p", str(target.port)]
        self._pin(target.host_key)
        self._credentials()
        self.argv += [
            "-o", f"ConnectTimeout={int(target.connect_timeout)}",
            "-o", f"ServerAliveInterval={target.keepalive}",
            "-o", "ServerAliveCountMax=3",
            "-o", "LogLevel=ERROR",
            "-o", "IdentityAgent=none",
            "-o", "ForwardAgent=no",
            "-o", "ClearAllForwardings=yes",
            "-o", "Compression=no",
            *(["-o", f"Ciphers={ciphers}"] if ciphers else []),
            "-l", target.username,
            "--", target.host,
        ]  # fmt: skip

    def _write(self, name: str, text: str, mode: int = 0o600) -> str:
        path = os.path.join(self.directory, name)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        return path

    def _pin(self, key: HostKey) -> None:
        known_hosts = self._write("known_hosts", f"{ALIAS} {key.line}\n")
        self.argv += [
            "-o", f"HostKeyAlias={ALIAS}",
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UpdateHostKeys=no",
            "-o", "CheckHostIP=no",
        ]  # fmt: skip

    def _credentials(self) -> None:
        target = self.target
        secret = target.password if target.auth != "key" else target.passphrase
        if target.auth == "key":
            key_file = self._write("identity", normalize_key_text(target.private_key))
            self.argv += [
                "-i", key_file,
                "-o", "IdentitiesOnly=yes",
                "-o", "PreferredAuthentications=publickey",
                "-o", "PasswordAuthentication=no",
                "-o", "KbdInteractiveAuthentication=no",
            ]  # fmt: skip
        else:
            self.argv += [
                "-o", "PubkeyAuthentication=no",
                "-o", "PreferredAuthentications=password,keyboard-interactive",
            ]  # fmt: skip
        self.argv += ["-o", "NumberOfPasswordPrompts=1"]
        if secret:
            askpass = self._write("askpass", _ASKPASS, 0o700)
            self.argv += ["-o", "BatchMode=no"]
            self.env.update(
                SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", MACKUPER_SSH_SECRET=secret
            )
            self.env.pop("DISPLAY", None)
        else:
            self.argv += ["-o", "BatchMode=yes"]

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def connection_error(target: SSHTarget, stderr: str) -> SSHError:
    """The plain message for an `ssh` exit 255, from what the client printed."""
    text = " ".join(stderr.split())
    where = f"{target.host}:{target.port}"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "Host key verification failed" in text:
        offered = _OFFERED.search(stderr)
        pinned = target.host_key
        trusted = f"{pinned.type} {pinned.fingerprint}" if pinned else "another key"
        sent = offered.group(1) if offered else "a different key"
        return HostKeyMismatch(
            f"the host key of {where} changed: the server sent {sent}, but"
            f" {trusted} is trusted; nothing was sent. If the change"
            " is expected, test the connection and trust the new key."
        )
    if "Could not resolve hostname" in text:
        return SSHError(f"the host name {target.host} could not be resolved")
    if "Connection refused" in text:
        return SSHUnreachable(f"{target.host} refused the connection on port {target.port}")
    if "timed out" in text or "Timeout" in text:
        return SSHUnreachable(f"the connection to {where} timed out")
    if "Permission denied" in text or "Too many authentication failures" in text:
        return SSHError(f"authentication failed for {target.address} ({target.auth})")
    if "incorrect passphrase" in text or "Load key" in text:
        return SSHError("the private key could not be unlocked: wrong passphrase")
    if any(
        words in text
        for words in (
            "Connection closed",
            "closed by remote host",
            "Connection reset",
            "Broken pipe",
        )
    ):
        return SSHUnreachable(f"{where} closed the connection")
    if not text:
        return SSHUnreachable(f"the connection to {where} was lost")
    return SSHError(f"ssh to {where} failed: {text[:300]}")


TOOL_STARTS = "mackuper-tool-starts"
"""The line a command run over SSH writes to standard error right before the tool
starts (sources/remote.py, sources/ssh_tar.py), after a line break of its own (a
greeting that ends without one would swallow it): what comes before it is the login
shell's (a ~/.bashrc that greets), not the tool's, and is never taken for the tool's
failure."""
_PREAMBLE = re.compile(rb"(?:^|\n)" + re.escape(TOOL_STARTS.encode()) + rb"\n")


def without_preamble(stderr: bytes) -> bytes:
    """A command's standard error from the line after TOOL_STARTS on; all of it when
    that line is missing (the SSH client or the remote shell failed before the tool)."""
    found = _PREAMBLE.search(stderr)
    return stderr[found.end() :] if found else stderr


OUTPUT_STARTS = "mackuper-output-starts"
OUTPUT_MARK = f"\n{OUTPUT_STARTS}\n".encode()
"""What a command run over SSH writes to standard output right before the tool starts
(sources/remote.py, sources/ssh_tar.py): a login shell that prints there (a ~/.bashrc
that greets on standard output) would otherwise put its words at the start of the dump."""
SAY_STARTS = f"printf '\\n%s\\n' {TOOL_STARTS} >&2; printf '\\n%s\\n' {OUTPUT_STARTS};"
"""The shell commands that say TOOL_STARTS and OUTPUT_MARK, each on a line of its own
whatever the login shell printed before it (the empty line each adds before its mark is
dropped with the other blank ones, and is part of OUTPUT_MARK)."""


def without_output_preamble(stdout: bytes) -> bytes | None:
    """A command's standard output from after OUTPUT_MARK; None when the mark is missing
    (the SSH client or the remote shell failed before the tool, or the host ran something
    else: a forced command)."""
    at = stdout.find(OUTPUT_MARK)
    return stdout[at + len(OUTPUT_MARK) :] if at >= 0 else None


NOT_THE_TOOL = (
    "the SSH host ran something else (it never said the line Mackuper's command writes"
    " before the tool)"
)
"""Why a command over SSH that exited 0 without OUTPUT_MARK is not the tool's answer."""
