"""A reusable corpus for the SSH benchmarks, readable by the sshd fixture's users.

Half of the bytes in 16 MiB files, a quarter in 1 MiB files, a quarter in 32 KiB
files (1 GiB: 32 + 256 + 8192 files), random so compression cannot help.
Kept in /var/tmp between runs; made again when its size differs.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/var/tmp")  # noqa: S108 - a benchmark cache, world readable on purpose
MIB = 1 << 20
SHAPES = ((0.5, 16 * MIB), (0.25, MIB), (0.25, 32 * 1024))


def ensure_corpus(mib: int) -> Path:
    """Return the corpus directory for `mib` MiB, creating it when missing."""
    root = ROOT / f"mkp-bench-ssh-corpus-{mib}"
    done = root / ".complete"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    block = os.urandom(16 * MIB)
    total = mib * MIB
    for share, size in SHAPES:
        folder = root / f"files-{size // 1024}k"
        count = max(1, int(total * share) // size)
        for index in range(count):
            path = folder / f"{index // 256:03d}" / f"{index:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            offset = (index * 4099) % (len(block) - size + 1)
            path.write_bytes(block[offset : offset + size] + index.to_bytes(8, "big"))
    for dirpath, _dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)  # noqa: S103 - the sshd test users must read it
    done.touch()
    return root
