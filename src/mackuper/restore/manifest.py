"""The manifest stored beside each archive: reading it, and browsing its file tree."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mackuper.core.naming import manifest_key
from mackuper.destinations.base import Destination, DestinationError
from mackuper.pipeline.age import SCRYPT_WORK_FACTOR, Identity, ScryptIdentity
from mackuper.pipeline.encrypt import unseal_manifest
from mackuper.pipeline.errors import PipelineError
from mackuper.restore.archives import DecryptionKeys
from mackuper.restore.errors import RestoreError

SEARCH_LIMIT = 500


def read_manifest(destination: Destination, archive_key: str) -> dict[str, Any]:
    """The parsed manifest; raises RestoreError when missing or not a manifest."""
    try:
        document = destination.get_bytes(manifest_key(archive_key))
    except DestinationError as error:
        raise RestoreError(f"the manifest of this backup cannot be read: {error}") from None
    try:
        manifest = json.loads(document)
    except ValueError:
        raise RestoreError("the manifest of this backup is not valid JSON") from None
    if not isinstance(manifest, dict) or "mackuper_manifest" not in manifest:
        raise RestoreError("the manifest of this backup is not a Mackuper manifest")
    return manifest


def unsealed(
    manifest: dict[str, Any], keys: DecryptionKeys, max_work_factor: int = SCRYPT_WORK_FACTOR
) -> dict[str, Any]:
    """The manifest with its sealed file list opened when the keys allow; else as is.

    A passphrase is tried only up to `max_work_factor`: by default the one Mackuper
    itself writes, so a manifest from storage cannot make a web request spend 4 GiB
    and seconds of scrypt (work factor 22); runs in the worker may allow more.
    """
    if not isinstance(manifest.get("sealed_age"), str) or not keys:
        return manifest
    identities: list[str | Identity] = list(keys.identities)
    if keys.passphrase:
        identities.append(ScryptIdentity(keys.passphrase, max_work_factor))
    try:
        return unseal_manifest(manifest, identities)
    except (PipelineError, ValueError):
        return manifest


def manifest_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The file list, or [] when it is absent or encrypted."""
    files = manifest.get("files")
    if not isinstance(files, list):
        return []
    return [item for item in files if isinstance(item, dict) and isinstance(item.get("path"), str)]


@dataclass
class Node:
    name: str
    path: str
    type: str
    size: int
    mtime: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "type": self.type,
            "size": self.size,
            "mtime": self.mtime,
        }


def children(files: list[dict[str, Any]], folder: str) -> list[Node]:
    """The entries directly inside `folder` ('' for the top), folders first."""
    prefix = folder.strip("/")
    prefix = prefix + "/" if prefix else ""
    found: dict[str, Node] = {}
    for item in files:
        path = str(item["path"]).strip("/")
        if not path.startswith(prefix) or path == prefix.rstrip("/"):
            continue
        rest = path[len(prefix) :]
        name, slash, _deeper = rest.partition("/")
        if slash or item.get("type") == "directory":
            node = found.get(name)
            if node is None or node.type != "directory":
                found[name] = Node(name, prefix + name, "directory", 0, None)
            found[name].size += int(item.get("size") or 0) if slash else 0
        else:
            found[name] = Node(
                name,
                path,
                str(item.get("type", "file")),
                int(item.get("size") or 0),
                item.get("mtime"),
            )
    return sorted(found.values(), key=lambda node: (node.type != "directory", node.name.lower()))


def search(files: list[dict[str, Any]], text: str) -> tuple[list[Node], bool]:
    """Entries whose name contains `text` (any case); and whether the list was cut."""
    needle = text.casefold()
    matches: list[Node] = []
    for item in files:
        path = str(item["path"]).strip("/")
        name = path.rsplit("/", 1)[-1]
        if needle in name.casefold():
            if len(matches) >= SEARCH_LIMIT:
                return matches, True
            matches.append(
                Node(
                    name,
                    path,
                    str(item.get("type", "file")),
                    int(item.get("size") or 0),
                    item.get("mtime"),
                )
            )
    return matches, False
