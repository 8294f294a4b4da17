"""Validation of an SSH source form: settings, write-only secrets and the pinned host key."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

from mackuper.core.globs import validate as validate_glob
from mackuper.sources.ssh import TRANSFER_MODES
from mackuper.sources.ssh_connect import HostKey, SSHError, load_private_key

_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]+$")
_USER = re.compile(r"^[A-Za-z0-9._@+-]+$")


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _port(value: Any) -> int | None:
    if value in ("", None):
        return 22
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def validate_ssh(
    payload: dict[str, Any],
    existing: dict[str, Any],
    lines: Callable[[Any], list[str]],
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """(config, secrets, errors); a blank secret field keeps the stored secret."""
    errors: dict[str, str] = {}
    host = _text(payload, "host")
    username = _text(payload, "username")
    auth = _text(payload, "auth") or "password"
    transfer = _text(payload, "transfer") or "auto"
    port = _port(payload.get("port"))
    paths = lines(payload.get("paths"))
    excludes = lines(payload.get("excludes"))
    if not host:
        errors["host"] = "Enter the server's host name or address."
    elif not _HOST.match(host) or host.startswith("-"):
        errors["host"] = "Use a host name or IP address, without spaces."
    if port is None:
        errors["port"] = "Use a port from 1 to 65535."
    if not username:
        errors["username"] = "Enter the user name to log in as."
    elif not _USER.match(username) or username.startswith("-"):
        errors["username"] = "Use a user name without spaces or special characters."
    if auth not in ("password", "key"):
        errors["auth"] = "Choose password or private key."
    if transfer not in TRANSFER_MODES:
        errors["transfer"] = "Choose automatic, tar or SFTP."
    if not paths:
        errors["paths"] = "Enter at least one remote path to back up."
    elif bad := [path for path in paths if not posixpath.isabs(path)]:
        errors["paths"] = f"Use absolute remote paths ({bad[0]} is relative)."
    for pattern in excludes:
        problem = validate_glob(pattern)
        if problem:
            errors["excludes"] = problem[0].upper() + problem[1:] + "."
            break
    host_key = _text(payload, "host_key")
    if not host_key:
        errors["host_key"] = "Test the connection and trust the server's host key."
    else:
        try:
            host_key = HostKey.parse(host_key).line
        except ValueError:
            errors["host_key"] = "The trusted host key is not an OpenSSH public key."
    secrets = _secrets(payload, existing, auth, errors)
    config = {
        "host": host,
        "port": port or 22,
        "username": username,
        "auth": auth,
        "paths": paths,
        "excludes": excludes,
        "transfer": transfer,
        "host_key": host_key,
        # Shown by the API in place of the secrets themselves, which never leave.
        "secrets": {
            name: "set" if secrets.get(name) else "not set"
            for name in ("password", "private_key", "passphrase")
        },
    }
    return config, secrets, errors


def _secret(payload: dict[str, Any], existing: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if isinstance(value, str) and value.strip():
        return value if name == "private_key" else value.strip()
    return str(existing.get(name) or "")


def _secrets(
    payload: dict[str, Any], existing: dict[str, Any], auth: str, errors: dict[str, str]
) -> dict[str, str]:
    if auth != "key":
        password = _secret(payload, existing, "password")
        if not password:
            errors["password"] = "Enter the password."  # noqa: S105 - a form message
        return {"password": password} if password else {}
    private_key = _secret(payload, existing, "private_key")
    passphrase = _secret(payload, existing, "passphrase")
    if not private_key:
        errors["private_key"] = "Paste the private key (OpenSSH or PEM text)."
        return {}
    try:
        load_private_key(private_key, passphrase)
    except SSHError as error:
        field = "passphrase" if "passphrase" in str(error) else "private_key"
        errors[field] = str(error)[0].upper() + str(error)[1:] + "."
    secrets = {"private_key": private_key}
    if passphrase:
        secrets["passphrase"] = passphrase
    return secrets
