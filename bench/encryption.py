"""Cost of age encryption in the backup pipeline: time and peak memory, with and without.

    .venv/bin/python -m bench.encryption --gib 2 --format tar --rounds 3

Each case runs `run_backup` in a fresh subprocess (so peak RSS is its own) over a
synthetic source generated on the fly (pseudo-random, incompressible, nothing on
disk), into a destination that discards the bytes (`--destination null`, the CPU-bound
worst case) or a local directory (`--destination local`, written and fsynced like
real backups, then deleted). Cases alternate
(plain, age, plain, age, ...) so a changing machine load hits both alike; the
report gives each run and the medians of wall time and of CPU time (user + system of
the case's process, which a busy shared machine distorts less than wall time).
`--passphrase` adds one scrypt (age's work factor 18) case, whose key derivation
briefly needs about 256 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from mackuper.destinations.base import StoredObject
from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.age import ScryptRecipient, X25519Identity
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.base import Entry, EntryType, Reporter

MIB = 1024 * 1024
FILE_SIZE = 256 * MIB


class _PatternReader:
    """`size` pseudo-random bytes, served from a 4 MiB random block at a moving offset."""

    block = os.urandom(4 * MIB) * 2

    def __init__(self, size: int, seed: int) -> None:
        self.left = size
        self.offset = (seed * 7919) % (4 * MIB)

    def readinto(self, buffer: memoryview) -> int:
        count = min(len(buffer), self.left, 4 * MIB)
        buffer[:count] = self.block[self.offset : self.offset + count]
        self.offset = (self.offset + count + 4099) % (4 * MIB)
        self.left -= count
        return count

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(min(size if size >= 0 else self.left, self.left))
        count = self.readinto(memoryview(buffer))
        return bytes(buffer[:count])

    def __enter__(self) -> _PatternReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


class SyntheticSource:
    def __init__(self, total: int) -> None:
        self.total = total

    def describe(self) -> str:
        return f"synthetic {self.total // MIB} MiB"

    def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
        for index in range((self.total + FILE_SIZE - 1) // FILE_SIZE):
            size = min(FILE_SIZE, self.total - index * FILE_SIZE)

            def opener(size: int = size, index: int = index) -> Any:
                return _PatternReader(size, index)

            yield Entry(f"data/part-{index}.bin", EntryType.FILE, size, 0o644, 1.7e9, open=opener)

    def close(self) -> None:
        return None


class _NullWriter:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)

    def commit(self) -> StoredObject:
        return StoredObject("bench", self.size)

    def abort(self) -> None:
        return None


class NullDestination:
    kind = "null"
    prefix = ""

    def describe(self) -> str:
        return "null"

    def open_writer(self, key: str, metadata: dict[str, str], on_upload_started: Any = None) -> Any:
        return _NullWriter()

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        return None

    def put_file(self, key: str, file: Any, content_type: str) -> None:
        return None

    def stat(self, key: str) -> None:
        return None


class _Hooks:
    def log(self, level: str, message: str) -> None:
        return None

    def progress(self, **values: Any) -> None:
        return None

    def artifact_opened(self, destination_id: int, key: str) -> int:
        return 1

    def artifact_upload_started(self, artifact_id: int, upload_id: str) -> None:
        return None

    def artifact_stored(self, artifact_id: int, size: int, archive_hash: tuple[str, str]) -> None:
        return None

    def artifact_discarded(self, artifact_id: int) -> None:
        return None


def run_case(case: str, total: int, archive_format: str, destination: Any) -> dict[str, Any]:
    recipients: list[Any] | None = None
    if case == "age":
        recipients = [X25519Identity.generate().recipient()]
    elif case == "passphrase":
        recipients = [ScryptRecipient("bench passphrase")]
    plan = BackupPlan(
        job_id=1,
        job_slug="bench",
        job_name="bench",
        run_id=1,
        archive_format=archive_format,
        compression_level=None,
        source=SyntheticSource(total),
        destinations={1: destination},
        started_at=datetime.now(UTC),
        encryption=recipients,
    )
    started = time.monotonic()
    result = run_backup(plan, _Hooks())  # type: ignore[arg-type]
    seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "case": case,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "mib_per_second": round(total / MIB / seconds, 1),
        "archive_bytes": result.size,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--format", default="tar")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passphrase", action="store_true")
    parser.add_argument("--destination", choices=["null", "local"], default="null")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    total = int(args.gib * 1024 * MIB)
    if args.case:
        if args.destination == "null":
            print(json.dumps(run_case(args.case, total, args.format, NullDestination())))
            return
        with tempfile.TemporaryDirectory(prefix="mkp-bench-") as folder:
            destination = LocalDestination(folder)
            print(json.dumps(run_case(args.case, total, args.format, destination)))
        return
    cases = ["plain", "age"] * args.rounds + (["passphrase"] if args.passphrase else [])
    runs: list[dict[str, Any]] = []
    for case in cases:
        command = [sys.executable, "-m", "bench.encryption", "--case", case]
        command += ["--gib", str(args.gib), "--format", args.format]
        command += ["--destination", args.destination]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(output))
        print(json.dumps(runs[-1]), flush=True)
    summary: dict[str, Any] = {
        "gib": args.gib,
        "format": args.format,
        "destination": args.destination,
        "load": [round(value, 2) for value in os.getloadavg()],
    }
    for case in sorted({run["case"] for run in runs}):
        chosen = [run for run in runs if run["case"] == case]
        summary[case] = {
            "median_seconds": statistics.median(run["seconds"] for run in chosen),
            "median_cpu_seconds": round(statistics.median(run["cpu_seconds"] for run in chosen), 2),
            "max_peak_rss_mib": max(run["peak_rss_mib"] for run in chosen),
        }
    plain, encrypted = summary["plain"]["median_seconds"], summary["age"]["median_seconds"]
    summary["age_time_ratio"] = round(encrypted / plain, 3)
    cpu_plain, cpu_age = (
        summary["plain"]["median_cpu_seconds"],
        summary["age"]["median_cpu_seconds"],
    )
    summary["age_cpu_ratio"] = round(cpu_age / cpu_plain, 3)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
