"""Source trees for backup tests, and how to compare an extracted tree with one."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import blake3


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def b3sum(path: Path) -> str:
    """The BLAKE3 of one file as the `b3sum` tool prints it: how a person checks an archive
    against its manifest, or a restored file against its entry."""
    printed = subprocess.run(
        ["b3sum", "--no-names", "--", str(path)], check=True, capture_output=True, text=True
    )
    return printed.stdout.strip()


def blake3_bytes(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def b3sum_files(root: Path) -> dict[str, str]:
    """Relative path -> BLAKE3 of every regular file (links not followed), as the `b3sum`
    tool prints it: what a person checks a restored file against its manifest entry with."""
    paths = [path for path in sorted(root.rglob("*")) if path.is_file() and not path.is_symlink()]
    if not paths:
        return {}
    # One line per file, "HEX  NAME"; --no-names keeps odd names (a line break) out of it.
    printed = subprocess.run(
        ["b3sum", "--no-names", "--", *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        path.relative_to(root).as_posix(): digest
        for path, digest in zip(paths, printed, strict=True)
    }


def make_small_tree(root: Path) -> Path:
    """A small tree with nested folders, an empty folder, odd names and a symlink."""
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "docs" / "readme.txt").write_text("hello backup\n")
    (root / "docs" / "deep" / "er" / "data.bin").write_bytes(os.urandom(200_000))
    (root / "name with spaces é.txt").write_text("unicode and spaces\n")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (root / "link-to-readme").symlink_to("docs/readme.txt")
    return root


def file_hashes(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every regular file (links not followed)."""
    result = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            result[path.relative_to(root).as_posix()] = sha256_file(path)
    return result
