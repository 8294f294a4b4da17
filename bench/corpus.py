"""A reproducible 1 GiB corpus for the engine benchmark, under bench/corpus/ (gitignored).

    .venv/bin/python -m bench.corpus [--target bench/corpus/engine] [--extra-gib 0]

20,000 small text files (1-12 KiB) in 200 folders, 100 medium log-like files of
4 MiB (compressible), and 4 incompressible files of 128 MiB. Every byte comes
from a seeded generator, so the corpus is the same on every machine; a marker
file records the layout version and the corpus is only rebuilt when it changes.

`--extra-gib N` adds N GiB in 128 MiB files under extra/ (alternately random and
log-like text), for memory that must stay flat as the backup grows (issue 23: the
10 GiB corpus is the 1 GiB one plus 9 extra GiB; the file count, and with it the
manifest held in memory, barely changes).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
from pathlib import Path

VERSION = "engine-corpus-1"
DEFAULT_TARGET = Path(__file__).resolve().parent / "corpus" / "engine"
SMALL_FILES = 20_000
SMALL_FOLDERS = 200
MEDIUM_FILES = 100
MEDIUM_SIZE = 4 * 1024 * 1024
LARGE_FILES = 4
LARGE_SIZE = 128 * 1024 * 1024
MTIME = 1_700_000_000

_WORDS = (  # noqa: SIM905 - a sentence is easier to read than a list of 50 strings
    "backup archive stream bucket upload the of and to in is that for it as with was on be"
    " by at this from or have an are but not you all they which one had word were there"
    " error warning info debug request response user session token file path size time"
).split()


def _text_pool(rng: random.Random, size: int) -> bytes:
    lines = []
    total = 0
    while total < size:
        words = rng.choices(_WORDS, k=rng.randint(4, 16))
        line = f"{rng.randint(0, 99999):05d} " + " ".join(words) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def build(target: Path, extra_gib: int = 0) -> Path:
    """Build the corpus at `target` unless it is already there; return `target`."""
    marker = target / ".corpus-version"
    version = VERSION + (f"+{extra_gib}GiB" if extra_gib else "")
    if marker.exists() and marker.read_text() == version:
        return target
    if target.exists():
        shutil.rmtree(target)
    rng = random.Random(20261126)  # noqa: S311 - reproducible test data, not security
    pool = _text_pool(rng, 8 * 1024 * 1024)
    small = target / "small"
    for index in range(SMALL_FILES):
        folder = small / f"dir-{index % SMALL_FOLDERS:03d}"
        if index < SMALL_FOLDERS:
            folder.mkdir(parents=True)
        size = rng.randint(1024, 12 * 1024)
        start = rng.randrange(0, len(pool) - size)
        (folder / f"note-{index:05d}.txt").write_bytes(pool[start : start + size])
    medium = target / "medium"
    medium.mkdir()
    for index in range(MEDIUM_FILES):
        with (medium / f"log-{index:03d}.log").open("wb") as handle:
            written = 0
            while written < MEDIUM_SIZE:
                size = min(rng.randint(4096, 65536), MEDIUM_SIZE - written)
                start = rng.randrange(0, len(pool) - size)
                handle.write(pool[start : start + size])
                written += size
    large = target / "large"
    large.mkdir()
    for index in range(LARGE_FILES):
        with (large / f"blob-{index}.bin").open("wb") as handle:
            for _ in range(LARGE_SIZE // (1 << 20)):
                handle.write(rng.randbytes(1 << 20))
    if extra_gib:
        extra = target / "extra"
        extra.mkdir()
        for index in range(extra_gib * 1024 // (LARGE_SIZE >> 20)):
            with (extra / f"part-{index:03d}.bin").open("wb") as handle:
                for _ in range(LARGE_SIZE // (1 << 20)):
                    if index % 2:
                        start = rng.randrange(0, len(pool) - (1 << 20))
                        handle.write(pool[start : start + (1 << 20)])
                    else:
                        handle.write(rng.randbytes(1 << 20))
    for path in target.rglob("*"):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    marker.write_text(version)
    return target


def size_of(target: Path) -> tuple[int, int]:
    """(bytes, regular files) under `target`, the marker excluded."""
    total = files = 0
    for path in target.rglob("*"):
        if path.is_file() and path.name != ".corpus-version":
            total += path.stat().st_size
            files += 1
    return total, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--extra-gib", type=int, default=0)
    args = parser.parse_args()
    target = build(args.target, args.extra_gib)
    total, files = size_of(target)
    print(f"{target}: {files} files, {total / 2**30:.3f} GiB")


if __name__ == "__main__":
    main()
