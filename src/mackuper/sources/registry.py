"""Source kinds: validation of job source settings and construction, in one place."""

from __future__ import annotations

import os
from typing import Any

from mackuper.core.globs import validate as validate_glob
from mackuper.sources.base import Source, SourceError
from mackuper.sources.local import LocalSource
from mackuper.sources.ssh import SSHSource
from mackuper.sources.ssh_validate import validate_ssh

SOURCE_KINDS = ("local", "ssh")
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "local": (),
    "ssh": ("password", "private_key", "passphrase"),
}


def split_lines(value: Any) -> list[str]:
    """Non-blank stripped lines of a textarea value (or of a list of strings)."""
    if isinstance(value, str):
        value = value.splitlines()
    if not isinstance(value, list):
        return []
    return [item.strip() for item in value if isinstance(item, str) and item.strip()]


def validate(
    kind: str, payload: dict[str, Any], existing: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """(config, secrets, errors) for a job's source form.

    `existing` holds the secrets stored for the job: a blank secret field keeps them.
    """
    errors: dict[str, str] = {}
    if kind not in SOURCE_KINDS:
        return {}, {}, {"source_kind": "Choose a source type."}
    if kind == "ssh":
        return validate_ssh(payload, existing or {}, split_lines)
    paths = split_lines(payload.get("paths"))
    excludes = split_lines(payload.get("excludes"))
    if not paths:
        errors["paths"] = "Enter at least one path to back up."
    elif bad := [path for path in paths if not os.path.isabs(path)]:
        errors["paths"] = f"Use absolute paths ({bad[0]} is relative)."
    for pattern in excludes:
        problem = validate_glob(pattern)
        if problem:
            errors["excludes"] = problem[0].upper() + problem[1:] + "."
            break
    return {"paths": paths, "excludes": excludes}, {}, errors


def build(kind: str, config: dict[str, Any], secrets: dict[str, Any]) -> Source:
    if kind == "local":
        return LocalSource(config.get("paths", []), config.get("excludes", []))
    if kind == "ssh":
        return SSHSource.from_config(config, secrets)
    raise SourceError(f"unknown source kind {kind!r}")
