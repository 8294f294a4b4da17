""" "Test connection" for an SSH source: the server's key, then login and path checks.

Credentials are sent only when the caller already trusts the key the server shows;
an unknown or changed key stops the probe right after the key exchange.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import paramiko

from mackuper.sources.ssh_tar import openssh_available
from mackuper.ssh import (
    HostKey,
    SSHError,
    SSHTarget,
    authenticate,
    mismatch_message,
    open_sftp,
    open_transport,
)


@dataclass
class ProbeResult:
    status: str
    """ok | untrusted | mismatch | failed"""
    message: str
    host_key: HostKey | None = None
    paths: list[dict[str, Any]] = field(default_factory=list)
    transfer: str = ""

    def as_json(self) -> dict[str, Any]:
        key = self.host_key
        return {
            "ok": self.status == "ok",
            "status": self.status,
            "message": self.message,
            "host_key": key.line if key else None,
            "key_type": key.type if key else None,
            "fingerprint": key.fingerprint if key else None,
            "paths": self.paths,
            "transfer": self.transfer,
        }


def probe(target: SSHTarget, paths: Sequence[str]) -> ProbeResult:
    """Connect, compare the host key, and if trusted log in and check each path."""
    try:
        transport, offered = open_transport(target)
    except SSHError as error:
        return ProbeResult("failed", _sentence(str(error)))
    try:
        if target.host_key is None:
            return ProbeResult(
                "untrusted",
                f"The server shows a {offered.type} key with fingerprint {offered.fingerprint}."
                " Compare it with the server's own (ssh-keygen -lf on the host key), then trust"
                " it; nothing was sent yet.",
                offered,
            )
        if offered != target.host_key:
            return ProbeResult("mismatch", _sentence(mismatch_message(target, offered)), offered)
        try:
            authenticate(transport, target)
            checked = _check_paths(transport, target, paths)
            transfer = _transfer(transport)
        except SSHError as error:
            return ProbeResult("failed", _sentence(str(error)), offered)
        bad = [item for item in checked if not item["ok"]]
        message = (
            f"Logged in as {target.username}; {len(checked) - len(bad)} of {len(checked)}"
            f" path(s) readable; transfer: {transfer}."
        )
        return ProbeResult("failed" if bad else "ok", message, offered, checked, transfer)
    finally:
        transport.close()


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:] if text else text
    return text if text.endswith(".") else text + "."


def _check_paths(
    transport: paramiko.Transport, target: SSHTarget, paths: Sequence[str]
) -> list[dict[str, Any]]:
    sftp = open_sftp(transport, target)
    results = []
    try:
        for path in paths:
            results.append({"path": path, **_check_path(sftp, path)})
    finally:
        sftp.close()
    return results


def _check_path(sftp: paramiko.SFTPClient, path: str) -> dict[str, Any]:
    try:
        info = sftp.stat(path)
        if stat.S_ISDIR(info.st_mode or 0):
            sftp.listdir(path)
            return {"ok": True, "message": "directory, readable"}
        with sftp.open(path, "rb") as handle:
            handle.read(1)
        return {"ok": True, "message": "file, readable"}
    except FileNotFoundError:
        return {"ok": False, "message": "does not exist"}
    except PermissionError:
        return {"ok": False, "message": "not readable (permission denied)"}
    except (OSError, paramiko.SSHException, EOFError) as error:
        return {"ok": False, "message": f"cannot be read ({error})"}


def _transfer(transport: paramiko.Transport) -> str:
    """Which transfer "auto" will use: tar when both ends can, else SFTP."""
    if not openssh_available():
        return "sftp (the OpenSSH client is not installed here)"
    try:
        channel = transport.open_session(timeout=10)
        channel.settimeout(10)
        channel.exec_command("tar --version")
        output = channel.makefile("rb").read(4096)
        channel.close()
    except (OSError, paramiko.SSHException, EOFError):
        return "sftp (the server runs no commands)"
    if b"GNU tar" in output:
        return "tar (GNU tar on the server)"
    return "sftp (the server has no GNU tar)"
