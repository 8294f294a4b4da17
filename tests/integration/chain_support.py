"""Incremental chains written by hand from the manifest spec (issue 17, /tmp/coord/17-chain.md
at the time): real GNU tar incremental archives (`--listed-incremental`) with chain
manifests, stored at a destination where Mackuper itself puts them. Retention,
verification and catalog import are tested on these without the incremental writer.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mackuper.core.naming import archive_key, manifest_key
from mackuper.destinations.base import Destination
from tests.trees import file_hashes, sha256_file


@dataclass(frozen=True)
class Point:
    name: str
    key: str
    level: int
    tree: dict[str, str]
    """The source's files at this point: relative path -> SHA-256."""


@dataclass
class HandChain:
    """Points of one job's chains, each stored as Mackuper would store it."""

    destination: Destination
    work: Path
    source: Path
    slug: str
    job_name: str
    archives: list[str] = field(default_factory=list)
    """The current chain's archive names, full first."""
    holders: dict[str, str] = field(default_factory=dict)
    """Absolute path -> the archive of the current chain holding its bytes."""
    run_id: int = 900

    def store(self, started_at: datetime, *, full: bool = False) -> Point:
        """Back up the source now as a full or the next incremental; the stored point."""
        snapshot = self.work / "snapshot"
        if full or not self.archives:
            snapshot.unlink(missing_ok=True)
            self.archives, self.holders = [], {}
        archive = self.work / "archive.tar.gz"
        relative = str(self.source).lstrip("/")
        subprocess.run(
            ["tar", "--format=posix", f"--listed-incremental={snapshot}", "-czf", str(archive)]
            + ["-C", "/", relative],
            check=True,
        )
        listing = subprocess.run(
            ["tar", "-tzf", str(archive)], check=True, capture_output=True, text=True
        )
        members = {line.rstrip("/") for line in listing.stdout.splitlines()}
        key = archive_key(self.destination.prefix, self.slug, started_at, "tar.gz")
        name = key.rsplit("/", 1)[-1]
        self.archives.append(name)
        self.run_id += 1
        data = archive.read_bytes()
        manifest = {
            "mackuper_manifest": 1,
            "mackuper_version": "hand-made for tests",
            "job": {"id": None, "slug": self.slug, "name": self.job_name},
            "run_id": self.run_id,
            "started_at": started_at.isoformat(),
            "finished_at": (started_at + timedelta(seconds=2)).isoformat(),
            "format": "tar.gz",
            "compression_level": None,
            "encryption": None,
            "archive": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
            "source": {"kind": "local", "paths": [str(self.source)]},
            "files": self._files(members, name),
            "chain": {
                "level": len(self.archives) - 1,
                "full": self.archives[0],
                "previous": self.archives[-2] if len(self.archives) > 1 else None,
                "archives": list(self.archives),
            },
        }
        self.destination.put_bytes(key, data, "application/gzip")
        document = json.dumps(manifest).encode()
        self.destination.put_bytes(manifest_key(key), document, "application/json")
        return Point(name, key, len(self.archives) - 1, file_hashes(self.source))

    def _files(self, members: set[str], name: str) -> list[dict[str, Any]]:
        """Every path present now; one held by an earlier archive names it."""
        files: list[dict[str, Any]] = []
        for path in sorted([self.source, *self.source.rglob("*")]):
            item: dict[str, Any] = {"path": str(path)}
            if path.is_symlink():
                item["type"] = "symlink"
            elif path.is_dir():
                files.append({**item, "type": "directory"})
                continue
            else:
                item.update(type="file", size=path.stat().st_size, sha256=sha256_file(path))
            if str(path).lstrip("/") in members:
                self.holders[str(path)] = name
            else:
                item["archive"] = self.holders[str(path)]
            files.append(item)
        return files


def restore_with_tar(destination: Destination, keys: list[str], target: Path) -> None:
    """What the README tells a person to do: GNU tar alone, the full then each
    incremental in order, with `--listed-incremental=/dev/null`."""
    target.mkdir(parents=True, exist_ok=True)
    for index, key in enumerate(keys):
        local = target.parent / f"chain-{index}.tar.gz"
        local.write_bytes(destination.get_bytes(key))
        subprocess.run(
            ["tar", "--listed-incremental=/dev/null", "-xzf", str(local), "-C", str(target)],
            check=True,
        )
        local.unlink()
