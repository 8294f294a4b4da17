"""Helpers for the engine tests: recording hooks, an every-kind tree, extraction checks."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mackuper.destinations.base import Destination
from mackuper.pipeline.errors import ArchiveNameTaken
from mackuper.pipeline.run import BackupPlan, BackupResult, run_backup
from mackuper.sources.local import LocalSource
from tests.trees import sha256_file

LONG_NAME = "a-very-long-file-name-" + "x" * 130 + ".txt"
DEEP_DIRECTORY = "/".join(["deep-directory-level-" + str(level) for level in range(12)])


@dataclass
class RecordingHooks:
    """The pipeline's RunHooks, remembering everything; `stop_after` raises from progress."""

    logs: list[tuple[str, str]] = field(default_factory=list)
    artifacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    stop_when: Any = None
    progress_calls: int = 0

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def progress(
        self, *, bytes_read: int, bytes_written: int, files_done: int, current: str
    ) -> None:
        self.progress_calls += 1
        if self.stop_when is not None:
            self.stop_when(bytes_read)

    def artifact_opened(self, destination_id: int, key: str) -> int:
        """Like the database's unique live-key index: a key held by a live artifact is taken."""
        if any(
            artifact["destination"] == destination_id
            and artifact["key"] == key
            and artifact["state"] in {"pending", "stored"}
            for artifact in self.artifacts.values()
        ):
            raise ArchiveNameTaken(key)
        artifact_id = len(self.artifacts) + 1
        self.artifacts[artifact_id] = {
            "destination": destination_id,
            "key": key,
            "state": "pending",
        }
        return artifact_id

    def artifact_upload_started(self, artifact_id: int, upload_id: str) -> None:
        self.artifacts[artifact_id]["upload_id"] = upload_id

    def artifact_stored(self, artifact_id: int, size: int, archive_hash: tuple[str, str]) -> None:
        self.artifacts[artifact_id].update(state="stored", size=size, archive_hash=archive_hash)

    def artifact_discarded(self, artifact_id: int) -> None:
        if self.artifacts[artifact_id]["state"] == "pending":
            self.artifacts[artifact_id]["state"] = "deleted"

    def messages(self, level: str | None = None) -> str:
        return "\n".join(text for lvl, text in self.logs if level is None or lvl == level)


def backup(
    source: Path | list[Path],
    destinations: dict[int, Destination],
    archive_format: str,
    hooks: RecordingHooks | None = None,
    level: int | None = None,
    started_at: datetime | None = None,
) -> tuple[BackupResult, RecordingHooks]:
    hooks = hooks or RecordingHooks()
    paths = [str(path) for path in (source if isinstance(source, list) else [source])]
    plan = BackupPlan(
        job_id=7,
        job_slug="engine-test",
        job_name="Engine test",
        run_id=42,
        archive_format=archive_format,
        compression_level=level,
        source=LocalSource(paths),
        destinations=destinations,
        started_at=started_at or datetime.now(UTC),
    )
    return run_backup(plan, hooks), hooks


def make_every_kind_tree(root: Path) -> Path:
    """Files, modes, empty dirs, links in and out, hard links, odd names, sparse, a fifo."""
    (root / "docs").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "private").mkdir(mode=0o700)
    (root / "docs" / "readme.txt").write_text("hello backup\n")
    script = root / "docs" / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o750)
    (root / "private" / "secret.txt").write_bytes(os.urandom(70_000))
    (root / "private" / "secret.txt").chmod(0o600)
    (root / "name with spaces é.txt").write_text("unicode and spaces\n")
    (root / "line\nbreak.txt").write_text("a newline in the name\n")
    (root / "emoji-🦆.bin").write_bytes(os.urandom(5000))
    (root / "zero-length").touch()
    deep = root / DEEP_DIRECTORY
    deep.mkdir(parents=True)
    (deep / LONG_NAME).write_bytes(os.urandom(1500))
    (root / "medium.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "link-to-readme").symlink_to("docs/readme.txt")
    (root / "link-out-of-source").symlink_to("/etc/hostname")
    (root / "dangling-link").symlink_to("does/not/exist")
    (root / "hard-a.txt").write_text("two names, one inode\n")
    os.link(root / "hard-a.txt", root / "hard-b.txt")
    with (root / "sparse.bin").open("wb") as handle:
        handle.truncate(16 * 1024 * 1024)
        handle.seek(8 * 1024 * 1024)
        handle.write(b"data in the middle of a hole")
    os.mkfifo(root / "a-fifo")
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(str(root / "s.sock"))
    except OSError:
        pass  # a path too long for AF_UNIX: the fifo still covers "special files"
    finally:
        listener.close()
    for index, path in enumerate(sorted(root.rglob("*"), reverse=True)):
        if not path.is_symlink():
            os.utime(path, (1_700_000_000 + index + 0.5, 1_700_000_000 + index + 0.5))
    return root


def describe_tree(root: Path, with_dir_mtimes: bool = True) -> dict[str, tuple[Any, ...]]:
    """Relative path -> (kind, mode, mtime seconds, content hash or link target)."""
    result: dict[str, tuple[Any, ...]] = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            info = path.lstat()
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                result[relative] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                result[relative] = (
                    ("dir", mode, int(info.st_mtime)) if with_dir_mtimes else ("dir", mode)
                )
            elif stat.S_ISREG(info.st_mode):
                result[relative] = ("file", mode, int(info.st_mtime), sha256_file(path))
    return result


EXTRACT = {
    "tar": ["tar", "-xf"],
    "tar.gz": ["tar", "-xzf"],
    "tar.bz2": ["tar", "-xjf"],
    "tar.xz": ["tar", "-xJf"],
    "tar.zst": ["tar", "-I", "zstd", "-xf"],
}


def extract(archive: Path, archive_format: str, target: Path) -> None:
    """Open `archive` with the standard tool for its format into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    if archive_format == "zip":
        subprocess.run(["unzip", "-qq", str(archive), "-d", str(target)], check=True)
    else:
        subprocess.run([*EXTRACT[archive_format], str(archive), "-C", str(target)], check=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
