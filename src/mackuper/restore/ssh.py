"""An SFTP connection for restoring to an SSH host, with the host key pinned.

The pinned fingerprint (`SHA256:...`, as `ssh-keygen -lf` prints it) is checked
before any credential is sent; a mismatch ends the connection at once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import socket
from dataclasses import dataclass

import paramiko

from mackuper.restore.errors import TargetError

CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class SshSettings:
    host: str
    port: int
    username: str
    host_key_fingerprint: str
    password: str = ""
    private_key: str = ""
    passphrase: str = ""

    def label(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _load_key(text: str, passphrase: str) -> paramiko.PKey:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), passphrase or None)
        except paramiko.PasswordRequiredException:
            raise TargetError("the private key needs its passphrase") from None
        except (paramiko.SSHException, ValueError):
            continue
    raise TargetError("the private key could not be read (wrong passphrase or unknown format)")


def open_sftp(settings: SshSettings) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
    """A logged-in SFTP session; raises TargetError with one plain sentence."""
    if not settings.host_key_fingerprint:
        raise TargetError("the SSH host key is not pinned; test the connection and accept it")
    try:
        sock = socket.create_connection((settings.host, settings.port), timeout=CONNECT_TIMEOUT)
    except OSError as error:
        raise TargetError(
            f"cannot connect to {settings.host}:{settings.port} ({error.strerror or error})"
        ) from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=CONNECT_TIMEOUT)
        seen = fingerprint(transport.get_remote_server_key())
        if seen != settings.host_key_fingerprint:
            raise TargetError(
                f"the SSH host key of {settings.host} changed ({seen}, pinned"
                f" {settings.host_key_fingerprint}); nothing was sent"
            )
        if settings.private_key:
            transport.auth_publickey(
                settings.username, _load_key(settings.private_key, settings.passphrase)
            )
        else:
            transport.auth_password(settings.username, settings.password)
        sftp = paramiko.SFTPClient.from_transport(transport)
        if sftp is None:
            raise TargetError("the SSH host refused an SFTP session")
    except paramiko.AuthenticationException:
        transport.close()
        raise TargetError(f"the SSH host refused the login of {settings.username}") from None
    except (paramiko.SSHException, OSError) as error:
        transport.close()
        raise TargetError(f"SSH connection to {settings.host} failed ({error})") from None
    except BaseException:
        with contextlib.suppress(Exception):
            transport.close()
        raise
    return transport, sftp
