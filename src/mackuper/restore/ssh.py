"""An SFTP session for restoring to an SSH host, through the SSH source's connect code.

The host key is pinned exactly as for backups (mackuper/ssh.py): either the
whole public key line the job stores, or the `SHA256:...` fingerprint typed in the
restore form. It is checked before any credential is sent; a mismatch ends the
connection at once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mackuper.restore.errors import TargetError
from mackuper.sources.base import SourceError
from mackuper.ssh import (
    HostKey,
    SSHError,
    SSHTarget,
    authenticate,
    connect,
    open_sftp,
    open_transport,
)

if TYPE_CHECKING:  # loaded by mackuper.ssh when a session is opened, not by every worker
    import paramiko


@dataclass(frozen=True)
class SshSettings:
    host: str
    port: int
    username: str
    host_key_fingerprint: str = ""
    host_key: str = ""
    """The pinned public key line (`ssh-ed25519 AAAA...`), as an SSH source stores it."""
    password: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)
    passphrase: str = field(default="", repr=False)

    @classmethod
    def from_source(cls, config: dict[str, Any], secrets: dict[str, Any]) -> SshSettings:
        """The settings of a job's SSH source: restore to the host it backs up."""
        return cls(
            host=str(config.get("host", "")),
            port=int(config.get("port") or 22),
            username=str(config.get("username", "")),
            host_key=str(config.get("host_key") or ""),
            password=str(secrets.get("password") or ""),
            private_key=str(secrets.get("private_key") or ""),
            passphrase=str(secrets.get("passphrase") or ""),
        )

    def label(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


def _target(settings: SshSettings) -> SSHTarget:
    try:
        pinned = HostKey.parse(settings.host_key) if settings.host_key else None
    except ValueError:
        raise TargetError("the pinned SSH host key is not a valid public key line") from None
    return SSHTarget(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        auth="key" if settings.private_key else "password",
        host_key=pinned,
        password=settings.password,
        private_key=settings.private_key,
        passphrase=settings.passphrase,
    )


def _connect_by_fingerprint(target: SSHTarget, pinned: str) -> paramiko.Transport:
    transport, offered = open_transport(target)
    try:
        if offered.fingerprint != pinned:
            raise TargetError(
                f"the SSH host key of {target.host} changed ({offered.fingerprint}, pinned"
                f" {pinned}); nothing was sent"
            )
        authenticate(transport, target)
    except BaseException:
        transport.close()
        raise
    return transport


def open_restore_sftp(settings: SshSettings) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
    """A logged-in SFTP session; raises TargetError with one plain sentence."""
    if not settings.host_key and not settings.host_key_fingerprint:
        raise TargetError("the SSH host key is not pinned; test the connection and accept it")
    target = _target(settings)
    try:
        if target.host_key is not None:
            transport = connect(target)
        else:
            transport = _connect_by_fingerprint(target, settings.host_key_fingerprint)
        try:
            sftp = open_sftp(transport, target)
        except BaseException:
            with contextlib.suppress(Exception):
                transport.close()
            raise
    except (SourceError, SSHError) as error:
        message = str(error)
        if "host key" in message.lower() and "nothing was sent" not in message:
            message += "; nothing was sent"
        raise TargetError(message) from None
    return transport, sftp
