"""A restore's parameters from a form or the CLI: checked, and split into what is
stored as it is and the secrets stored encrypted (SSH credentials, decryption keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mackuper.restore.extract import Policy
from mackuper.restore.paths import normalize_selection

SSH_SECRET_FIELDS = ("password", "private_key", "passphrase")
KEY_FIELDS = ("identity", "passphrase")


@dataclass
class RestoreRequest:
    """A validated restore form: parameters to store as they are, and secrets to encrypt."""

    details: dict[str, Any]
    secrets: dict[str, str]


def parse_restore(payload: dict[str, Any]) -> RestoreRequest | dict[str, str]:
    """The restore parameters from a form or the CLI, or field errors."""
    errors: dict[str, str] = {}
    policy = str(payload.get("policy") or Policy.SKIP.value)
    if policy not in {item.value for item in Policy}:
        errors["policy"] = "Choose skip, overwrite or keep-both."
    raw_paths = payload.get("paths") or []
    paths: list[str] = []
    if not isinstance(raw_paths, list) or not all(isinstance(p, str) for p in raw_paths):
        errors["paths"] = "Send the selected paths as a list of strings."
    else:
        paths = [p for p in raw_paths if p.strip("/")]
        try:
            normalize_selection(paths)
        except ValueError as error:
            errors["paths"] = f"A selected path is not valid: {error}."
    raw_target = payload.get("target")
    target: dict[str, Any] = raw_target if isinstance(raw_target, dict) else {}
    kind = str(target.get("kind") or "local")
    path = str(target.get("path") or "").strip()
    secrets: dict[str, str] = {}
    stored_target: dict[str, Any] = {"kind": kind, "path": path}
    if not path.startswith("/"):
        errors["target.path"] = "Give the absolute path of the directory to restore into."
    if kind == "ssh" and target.get("same_as_source"):
        stored_target["same_as_source"] = True
    elif kind == "ssh":
        port = target.get("port") or 22
        stored_target.update(
            host=str(target.get("host") or "").strip(),
            port=port if isinstance(port, int) else 0,
            username=str(target.get("username") or "").strip(),
            host_key_fingerprint=str(target.get("host_key_fingerprint") or "").strip(),
            host_key=str(target.get("host_key") or "").strip(),
        )
        if not stored_target["host"]:
            errors["target.host"] = "Enter the SSH host."
        if not 0 < stored_target["port"] < 65536:
            errors["target.port"] = "The port is a number from 1 to 65535."
        if not stored_target["username"]:
            errors["target.username"] = "Enter the SSH user name."
        fingerprint = str(stored_target["host_key_fingerprint"])
        if not (stored_target["host_key"] or fingerprint.startswith("SHA256:")):
            errors["target.host_key_fingerprint"] = (
                "Pin the host key: paste its SHA256 fingerprint (ssh-keygen -lf)."
            )
        secrets.update({name: str(target[name]) for name in SSH_SECRET_FIELDS if target.get(name)})
        if not (secrets.get("password") or secrets.get("private_key")):
            errors["target.password"] = "Give a password or a private key for the SSH host."
    elif kind != "local":
        errors["target.kind"] = "Restore to a local directory or to an SSH host."
    raw_keys = payload.get("decryption")
    keys: dict[str, Any] = raw_keys if isinstance(raw_keys, dict) else {}
    secrets.update({f"key_{name}": str(keys[name]) for name in KEY_FIELDS if keys.get(name)})
    if errors:
        return errors
    details = {
        "paths": paths,
        "policy": policy,
        "dry_run": bool(payload.get("dry_run", False)),
        "target": stored_target,
    }
    return RestoreRequest(details, secrets)
