"""A manifest entry's file hash (core/filehash.py): BLAKE3 as `b3sum` prints it, and the
SHA-256 of older entries as `sha256sum` does."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mackuper.core.filehash import FILE_HASH, hash_for, named_hash, new_file_hash


def _tool(program: str, path: Path) -> str:
    return subprocess.run(
        [program, "--", str(path)], check=True, capture_output=True, text=True
    ).stdout.split()[0]


@pytest.mark.parametrize("size", [0, 1, 1024, 1025, 300_000])
def test_the_hashes_are_what_the_standard_tools_print(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "file"
    path.write_bytes(data)
    written = new_file_hash()
    for start in range(0, size, 4096):  # in pieces, as a writer feeds it
        written.update(memoryview(data)[start : start + 4096])
    assert FILE_HASH == "blake3"
    assert written.hexdigest() == _tool("b3sum", path)
    older = hash_for("sha256")
    older.update(data)
    assert older.hexdigest() == _tool("sha256sum", path)


def test_an_entry_names_its_algorithm() -> None:
    assert named_hash({"path": "a", "type": "file", "blake3": "ab"}) == ("blake3", "ab")
    assert named_hash({"path": "a", "type": "file", "sha256": "cd"}) == ("sha256", "cd")
    assert named_hash({"path": "a", "type": "file", "blake3": None}) is None
    assert named_hash({"path": "d", "type": "directory"}) is None
    with pytest.raises(ValueError, match="unknown file hash 'md5'"):
        hash_for("md5")
