"""The local destination's write-out window against plain buffered writes.

    .venv/bin/python -m bench.local_write [--mib 1024] [--rounds 2] [--pause 8] [--dir /var/tmp]

Writes --mib MiB of random data in 1 MiB writes through `LocalWriter` (temp name,
commit = fsync + rename) twice per round: with the 32 MiB write-out window
(sync_file_range, then POSIX_FADV_DONTNEED behind it) and without it (the window
switched off, as before). Each case starts after --pause seconds of idleness, the
way backups start, and reports wall time and the kernel CPU time of the whole
machine (from /proc/stat; writing into page cache and writing it out are kernel work).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from mackuper.destinations import local

MIB = 1 << 20


def _system_seconds() -> float:
    with open("/proc/stat", encoding="ascii") as handle:
        fields = handle.readline().split()
    return int(fields[3]) / os.sysconf("SC_CLK_TCK")


def _one(directory: Path, mib: int, window: bool, block: bytes) -> tuple[float, float]:
    saved = local._start_writeback
    if not window:
        local._start_writeback = None
    try:
        writer = local.LocalDestination(str(directory)).open_writer("bench/archive.bin", {})
        system, started = _system_seconds(), time.perf_counter()
        for _ in range(mib):
            writer.write(block)
        writer.commit()
        return time.perf_counter() - started, _system_seconds() - system
    finally:
        local._start_writeback = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pause", type=float, default=8.0)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))  # noqa: S108
    args = parser.parse_args()
    directory = args.dir / f"mkp-bench-local-write-{os.getpid()}"
    block = os.urandom(MIB)
    print(f"load average before: {os.getloadavg()}")
    print("| case | seconds | kernel CPU s (machine) |")
    print("|---|---:|---:|")
    try:
        for _ in range(args.rounds):
            for window in (False, True):
                time.sleep(args.pause)
                seconds, system = _one(directory, args.mib, window, block)
                name = "write-out window" if window else "plain buffered writes"
                print(f"| {name} | {seconds:.2f} | {system:.2f} |", flush=True)
                (directory / "bench" / "archive.bin").unlink()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
