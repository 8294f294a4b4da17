"""Peak memory and disk use of one large backup streamed to S3 (moto on loopback).

    .venv/bin/python -m bench.s3_stream --mib 1024 [--format tar.gz --level 1]

Runs `mackuper serve` as users do, backs up MIB of incompressible data through an
S3 multipart upload, and prints the worker's peak RSS (VmHWM), the bytes it wrote
to any disk (/proc/PID/io write_bytes) and the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from tests.harness import (
    BrowserClient,
    disk_bytes_written,
    peak_rss,
    running_mackuper,
    s3_destination_payload,
)
from tests.servers.s3 import running_moto

MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--format", default="tar.gz")
    parser.add_argument("--level", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mkp-bench-") as work, running_moto() as s3:
        root = Path(work)
        source = root / "source"
        source.mkdir()
        remaining = args.mib
        index = 0
        while remaining > 0:
            size = min(remaining, 256)
            with (source / f"random-{index}.bin").open("wb") as handle:
                for _ in range(size):
                    handle.write(os.urandom(MIB))
            remaining -= size
            index += 1
        bucket = s3.make_bucket()
        with running_mackuper(root / "data") as mackuper:
            browser = BrowserClient(mackuper.url)
            destination = browser.complete_setup(s3_destination_payload(s3, bucket))
            job = browser.create_job(
                "bench",
                source,
                destination["id"],
                archive_format=args.format,
                compression_level=args.level,
            )
            worker = mackuper.worker_pid()
            written_before = disk_bytes_written(worker)
            started = time.monotonic()
            run = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
            finished = browser.wait_run(run["id"], timeout=3600)
            elapsed = time.monotonic() - started
            result = {
                "status": finished["status"],
                "source_mib": args.mib,
                "format": args.format,
                "level": args.level,
                "archive_bytes": finished["bytes_written"],
                "seconds": round(elapsed, 1),
                "mib_per_second": round(args.mib / elapsed, 1),
                "worker_peak_rss_mib": round(peak_rss(worker) / MIB, 1),
                "worker_disk_bytes_written": disk_bytes_written(worker) - written_before,
                "load_average": os.getloadavg()[0],
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
