"""gzip compressors on the 1 GiB bench corpus as one tar stream: size and CPU seconds.

    .venv/bin/python -m bench.gzip_stage stage|zlib|isal1|isal2|isal3 [--threads 2]

`stage` is Mackuper's ParallelGzipStage as it is (pipeline/streams.py), `zlib` the same
stage with zlib for every block (as before ISA-L took the blocks that do not compress),
`isalN` is `isal.igzip_threaded` at level N. The tar of bench/corpus.py's corpus is
written once to $BENCH_DIR (default /var/tmp); the output is counted and dropped.
Compare with `pigz -6 -c $BENCH_DIR/gzip-corpus.tar | wc -c` under `/usr/bin/time`;
CPU seconds are the whole process's user + system time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
import zlib
from pathlib import Path

import isal.igzip_threaded

from bench.corpus import DEFAULT_TARGET, build
from mackuper.pipeline import streams


class _Count:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)

    def close(self) -> None:
        return None

    def flush(self) -> None:
        return None


def _zlib_only(block: bytes | bytearray, dictionary: bytes | None, level: int) -> bytes:
    if dictionary:
        compressor = zlib.compressobj(
            level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary
        )
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("compressor", choices=["stage", "zlib", "isal1", "isal2", "isal3"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    tar = Path(os.environ.get("BENCH_DIR", "/var/tmp")) / "gzip-corpus.tar"  # noqa: S108
    if not tar.exists():
        corpus = build(DEFAULT_TARGET)
        with tar.open("wb") as output:
            subprocess.run(  # noqa: S603, S607
                ["tar", "-cf", "-", "-C", str(corpus.parent), corpus.name],
                stdout=output,
                check=True,
            )
    out = _Count()
    if args.compressor.startswith("isal"):
        level = int(args.compressor[4:])
        handle = isal.igzip_threaded.open(  # type: ignore[no-untyped-call]
            out, "wb", compresslevel=level, threads=args.threads
        )
        write, close = handle.write, handle.close
    else:
        if args.compressor == "zlib":
            streams._deflate_block = _zlib_only  # noqa: SLF001
        stage = streams.ParallelGzipStage(out, 6, args.threads)
        write, close = stage.write, stage.close
    started = time.perf_counter()
    with tar.open("rb", buffering=0) as source:
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        while count := source.readinto(buffer):
            write(view[:count])
    close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"{args.compressor}: {out.size} bytes from {tar.stat().st_size},"
        f" {time.perf_counter() - started:.2f} s, CPU {usage.ru_utime + usage.ru_stime:.2f} s"
    )


if __name__ == "__main__":
    main()
