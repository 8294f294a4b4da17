"""Issue 17, Done-when 1: a chain of seven points restores, point by point, with GNU
tar alone (the README's commands) and with Mackuper, equal to the source as it was.

Between the points the source gains and loses files, has files modified in place
(the same size and the same mtime, so only the ctime tells), renamed, turned from
file to directory to symbolic link and back, hard links added and removed, and
empty directories made and removed. The modification times are set explicitly, as
GNU tar would see them, so no change hides inside one second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mackuper.encryption import generate_identity
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import (
    finished_run,
    local_destination,
    ok,
    restore,
    run_log,
)
from tests.trees import sha256_file

pytestmark = pytest.mark.integration

POINTS = 7
MTIME = 1_700_000_000
TAR_FLAGS = {
    "tar": [],
    "tar.gz": ["--gzip"],
    "tar.bz2": ["--bzip2"],
    "tar.xz": ["--xz"],
    "tar.zst": ["--zstd"],
}
VARIANTS = [
    ("tar", False),
    ("tar.gz", False),
    ("tar.bz2", False),
    ("tar.xz", False),
    ("tar.zst", False),
    ("tar.zst", True),
    ("tar.gz", True),
]


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Relative path -> (type, content hash or link target, mode) and hard-link groups."""
    inodes: dict[int, list[str]] = {}
    found: dict[str, tuple[Any, ...]] = {}
    for directory, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            info = path.lstat()
            if path.is_symlink():
                found[relative] = ("symlink", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("directory", oct(info.st_mode & 0o777))
            else:
                found[relative] = ("file", sha256_file(path), oct(info.st_mode & 0o777))
                inodes.setdefault(info.st_ino, []).append(relative)
    for names in inodes.values():
        for name in names:
            found[name] = (*found[name], tuple(sorted(names)))
    return found


def touch(path: Path, step: int) -> None:
    """A fixed mtime per point: a change is seen by its ctime, not by a clock tick."""
    os.utime(path, (MTIME + step, MTIME + step), follow_symlinks=False)


def write(path: Path, text: str, step: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    touch(path, step)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def point_0(root: Path) -> None:
    write(root / "a" / "f1.txt", "first file\n", 0)
    write(root / "a" / "f2.txt", "same size A\n", 0)
    write(root / "a" / "b" / "f3.txt", "deep\n", 0)
    (root / "a" / "big.bin").write_bytes(os.urandom(300_000))
    (root / "empty").mkdir()
    (root / "a" / "link1").symlink_to("f1.txt")
    write(root / "h1.txt", "hard linked\n", 0)
    os.link(root / "h1.txt", root / "h2.txt")
    write(root / "t_file", "will become a directory\n", 0)
    write(root / "t_dir" / "inside.txt", "will become a file\n", 0)
    (root / "t_link").symlink_to("a/f1.txt")


def point_1(root: Path) -> None:
    write(root / "a" / "new.txt", "added at point 1\n", 1)
    (root / "a" / "f2.txt").write_text("same size B\n")  # same size ...
    touch(root / "a" / "f2.txt", 0)  # ... and the same mtime: only the ctime moved
    remove(root / "a" / "b" / "f3.txt")
    (root / "a" / "f1.txt").rename(root / "a" / "f1-renamed.txt")


def point_2(root: Path) -> None:
    remove(root / "t_file")
    write(root / "t_file" / "child.txt", "a file became a directory\n", 2)
    remove(root / "t_dir")
    write(root / "t_dir", "a directory became a file\n", 2)
    remove(root / "t_link")
    write(root / "t_link", "a symlink became a file\n", 2)


def point_3(root: Path) -> None:
    remove(root / "t_file")
    (root / "t_file").symlink_to("t_dir")
    (root / "e2" / "deeper").mkdir(parents=True)
    os.link(root / "h1.txt", root / "a" / "h3.txt")
    (root / "a" / "b").rename(root / "a" / "c")


def point_4(root: Path) -> None:
    remove(root / "t_dir")
    (root / "t_dir").symlink_to("e2")
    remove(root / "t_link")
    (root / "t_link").mkdir()
    remove(root / "empty")
    with (root / "h1.txt").open("a") as handle:
        handle.write("appended at point 4\n")
    touch(root / "h1.txt", 4)
    (root / "a" / "f1-renamed.txt").chmod(0o600)


def point_5(root: Path) -> None:
    """Nothing changes: the point stores only directories."""


def point_6(root: Path) -> None:
    remove(root / "h2.txt")
    remove(root / "a" / "link1")
    (root / "a" / "link1").symlink_to("f1-renamed.txt")
    write(root / "a" / "c" / "later.txt", "in a renamed directory\n", 6)
    remove(root / "a" / "new.txt")
    (root / "a" / "new.txt").mkdir()
    remove(root / "t_file")
    write(root / "t_file", "a symlink became a file again\n", 6)


CHANGES: list[Callable[[Path], None]] = [
    point_0,
    point_1,
    point_2,
    point_3,
    point_4,
    point_5,
    point_6,
]


def plain_tar_restore(archives: list[Path], identity_file: Path | None, target: Path) -> None:
    """The README's commands, each archive of the chain in order: `tar
    --listed-incremental=/dev/null -xf archive`, or for an encrypted chain `age -d -i
    key.txt archive | tar --listed-incremental=/dev/null --zstd -xf -`."""
    target.mkdir(parents=True)
    for archive in archives:
        if identity_file is None:
            command = ["tar", "--listed-incremental=/dev/null", "-xf", str(archive)]
            subprocess.run(command, cwd=target, check=True, timeout=60)
            continue
        compression = TAR_FLAGS[archive.name.removesuffix(".age").split(".", 1)[1]]
        age = subprocess.Popen(
            ["age", "-d", "-i", str(identity_file), str(archive)], stdout=subprocess.PIPE
        )
        tar = ["tar", "--listed-incremental=/dev/null", *compression, "-xf", "-"]
        subprocess.run(tar, stdin=age.stdout, cwd=target, check=True, timeout=60)
        assert age.stdout is not None
        age.stdout.close()
        assert age.wait(timeout=60) == 0


@pytest.mark.parametrize(("archive_format", "encrypted"), VARIANTS)
def test_seven_point_chain_restores_with_plain_tar_and_with_mackuper(
    tmp_path: Path, api: ApiClient, runtime: Runtime, archive_format: str, encrypted: bool
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    identity, recipient = generate_identity()
    extra: dict[str, Any] = {}
    if encrypted:
        extra["encryption"] = {"mode": "recipients", "recipients": [recipient]}
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Chain",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "archive_format": archive_format,
            "schedule": "",
            "destination_ids": [destination["id"]],
            "backup_mode": {"mode": "incremental", "full_every_runs": POINTS},
            **extra,
        },
    )["job"]
    assert job["backup_mode"]["mode"] == "incremental"

    snapshots = []
    runs = []
    for change in CHANGES:
        change(source)
        snapshots.append(snapshot(source))
        run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
        assert run["status"] == "success", run["error"]
        runs.append(run)
    backups = {
        backup["run_id"]: backup
        for backup in ok(api, "GET", f"/api/backups?job_id={job['id']}")["backups"]
    }
    inside = str(source).lstrip("/")
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(identity + "\n")

    for level, (run, expected) in enumerate(zip(runs, snapshots, strict=True)):
        backup = backups[run["id"]]
        archive = storage / backup["key"]
        manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
        if not encrypted:
            chain = manifest["chain"]
            assert chain["level"] == level
            assert chain["archives"][-1] == archive.name and len(chain["archives"]) == level + 1
        names = [backups[earlier["id"]]["key"] for earlier in runs[: level + 1]]
        archives = [storage / key for key in names]

        by_tar = tmp_path / f"tar-{level}"
        plain_tar_restore(archives, identity_file if encrypted else None, by_tar)
        assert snapshot(by_tar / inside) == expected, f"GNU tar, point {level}"

        by_mackuper = tmp_path / f"mackuper-{level}"
        decryption = {"decryption": {"identity": identity}} if encrypted else {}
        restored = restore(
            api, runtime, backup["id"], {"kind": "local", "path": str(by_mackuper)}, **decryption
        )
        assert restored["status"] == "success", restored["error"]
        assert snapshot(by_mackuper / inside) == expected, f"Mackuper, point {level}"

    # Unchanged files are never read: point 5 changed nothing, so it read no file's
    # bytes and stored only the directories (with their lists).
    assert runs[5]["bytes_read"] == 0
    assert "level 5 of the chain" in " ".join(run_log(api, runs[5]["id"]))
    if not encrypted:
        archive = storage / backups[runs[5]["id"]]["key"]
        manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
        stored = [item for item in manifest["files"] if "archive" not in item]
        assert {item["type"] for item in stored} == {"directory"}
        held = {item["path"]: item["archive"] for item in manifest["files"] if "archive" in item}
        assert held[f"{inside}/a/big.bin"] == manifest["chain"]["full"]
