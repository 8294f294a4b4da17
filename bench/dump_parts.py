"""How to store a dump of unknown length in a tar stream: part sizes against staging.

    .venv/bin/python -m bench.dump_parts [--mib 512] [--parts 1 4 16 64] [--repeat 2]

Each case is one real pipeline run (`run_backup`, tar.zst to a local directory) in a
fresh child process, fed by the same dump command (`head -c N /dev/urandom`, which
costs the same in every case):

- "parts P MiB": sources/dump.py, the dump read into one reused P MiB buffer, each
  full buffer one tar member;
- "staged": the dump written to a temporary file first, then that file archived
  (what a tar writer without parts has to do; the disk holds a second copy).

Prints seconds (median), peak RSS of the child and bytes it wrote to disk outside the
archive ("staged").
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MIB = 1 << 20


def _child(args: argparse.Namespace) -> None:
    import os
    from datetime import UTC, datetime

    from tests.harness import peak_rss
    from tests.integration.engine_support import RecordingHooks

    from mackuper.destinations.local import LocalDestination
    from mackuper.pipeline.run import BackupPlan, run_backup
    from mackuper.sources.base import Entry, Reporter, Source
    from mackuper.sources.dump import dump_entries
    from mackuper.sources.local import LocalSource

    argv = ["head", "-c", str(args.mib * MIB), "/dev/urandom"]
    out = Path(args.out)
    staged_bytes = 0

    class DumpSource:
        def describe(self) -> str:
            return "bench dump"

        def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
            yield from dump_entries("db/bench.dump", argv, {}, "head", reporter, args.part * MIB)

        def close(self) -> None:
            """Nothing to close."""

    started = time.perf_counter()
    source: Source
    if args.part:
        source = DumpSource()
    else:
        stage = out / "stage"
        stage.mkdir()
        with (stage / "bench.dump").open("wb") as handle:
            subprocess.run(argv, stdout=handle, check=True)  # noqa: S603
            handle.flush()
            os.fsync(handle.fileno())
        staged_bytes = (stage / "bench.dump").stat().st_size
        source = LocalSource([str(stage)])
    plan = BackupPlan(
        job_id=1,
        job_slug="bench",
        job_name="bench",
        run_id=1,
        archive_format="tar.zst",
        compression_level=None,
        source=source,
        destinations={1: LocalDestination(str(out / "archives"))},
        started_at=datetime.now(UTC),
    )
    run_backup(plan, RecordingHooks())
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss": peak_rss(os.getpid()), "staged": staged_bytes}))


def _case(part: int, mib: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-dump-", dir="/var/tmp") as out:
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "bench.dump_parts", "--child", "--part", str(part)]
            + ["--mib", str(mib), "--out", out],
            capture_output=True,
            text=True,
            check=True,
        )
        figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
        shutil.rmtree(out, ignore_errors=True)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--part", type=int, default=16, help="MiB per part; 0: staged")
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    print(f"{args.mib} MiB dump, tar.zst to a local directory, median of {args.repeat}\n")
    print("| case | seconds | peak RSS MiB | staged MiB |")
    print("|---|---|---|---|")
    for part in [*args.parts, 0]:
        runs = [_case(part, args.mib) for _ in range(args.repeat)]
        name = f"parts {part} MiB" if part else "staged to a temp file"
        seconds = statistics.median(run["seconds"] for run in runs)
        rss = max(run["rss"] for run in runs) / MIB
        staged = max(run["staged"] for run in runs) / MIB
        print(f"| {name} | {seconds:.2f} | {rss:.0f} | {staged:.0f} |", flush=True)


if __name__ == "__main__":
    main()
