"""core/snar.py against snapshot files GNU tar itself writes (issue 17)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mackuper.core.snar import (
    NO_DEVICE,
    SnapshotError,
    check,
    dumpdir_entries,
    dumpdir_of,
    without_devices,
)


def gnu_snapshot(tmp_path: Path) -> bytes:
    tree = tmp_path / "tree"
    (tree / "d" / "e").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "d" / "b.txt").write_text("b")
    (tree / "empty").mkdir()
    snar = tmp_path / "s.snar"
    subprocess.run(
        ["tar", "--listed-incremental", str(snar), "-cf", str(tmp_path / "t.tar"), "tree"],
        cwd=tmp_path,
        check=True,
    )
    return snar.read_bytes()


def test_devices_are_blanked_and_the_rest_is_kept(tmp_path: Path) -> None:
    original = gnu_snapshot(tmp_path)
    check(original)
    blanked = without_devices(original)
    check(blanked)
    fields = blanked.split(b"\n", 1)[1].split(b"\0")
    assert fields.count(NO_DEVICE) == 4  # tree, tree/d, tree/d/e, tree/empty
    assert NO_DEVICE not in original
    # Only the device fields changed: put the originals back and the bytes are equal.
    old = original.split(b"\n", 1)[1].split(b"\0")
    restored = [old[i] if field == NO_DEVICE else field for i, field in enumerate(fields)]
    assert original.split(b"\n", 1)[0] + b"\n" + b"\0".join(restored) == original
    # GNU tar reads the blanked file back (an incremental on it runs and lists the tree).
    (tmp_path / "blanked.snar").write_bytes(blanked)
    listed = subprocess.run(
        [
            "tar",
            "--listed-incremental",
            "blanked.snar",
            "--no-check-device",
            "-cvf",
            "u.tar",
            "tree",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "tree/a.txt" not in listed and "tree/d/" in listed


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a snapshot\n",
        b"GNU tar-1.34-2\n",
        b"GNU tar-1.34-2\n1\x002\x000\x001\x00",
        b"GNU tar-1.34-1\n",
    ],
)
def test_what_is_not_a_snapshot_is_refused(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        without_devices(data)


def test_dumpdir_round_trip() -> None:
    raw = b"Da\x00Nb\xff.txt\x00Yc\x00\x00"
    entries = dumpdir_entries(raw)
    assert entries == [("D", "a"), ("N", "b\udcff.txt"), ("Y", "c")]
    assert dumpdir_of(entries) == raw
