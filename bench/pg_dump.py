"""A PostgreSQL database backed up by Mackuper against `pg_dump -Fc -Z0 | zstd -3 > file`.

    .venv/bin/python -m bench.pg_dump [--gib 1] [--repeat 2] [--verify]

Starts a throwaway cluster (tests/servers/postgres.py, initdb on a free port), fills one
database with about `--gib` GiB of table data (once per run of this script), then
alternates, on the same database:

- the baseline: `pg_dump -Fc -Z0 -d db | zstd -3 -q -o file` (bash, pipefail), then `sync`;
- Mackuper: a fresh child process running the real pipeline (`run_backup`, a
  PostgreSQL source, tar.zst, a local destination; it fsyncs before publishing).

Prints seconds (median), the Mackuper process's peak RSS (VmHWM; pg_dump runs in
both cases and is not counted in either), bytes it wrote to disk besides the archive
("staged": /proc/PID/io write_bytes minus the archive) and both output sizes. With
`--verify`, the last Mackuper archive is restored with the README's command alone
(`tar -xOf ... | pg_restore`) into a new database and every row is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20


def _child(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    from tests.harness import disk_bytes_written, peak_rss
    from tests.integration.engine_support import RecordingHooks

    from mackuper.destinations.local import LocalDestination
    from mackuper.pipeline.run import BackupPlan, run_backup
    from mackuper.sources.postgres import PostgresConnection, PostgresSource

    source = PostgresSource(
        PostgresConnection("127.0.0.1", args.port, "postgres"),
        databases=[args.database],
        include_globals=False,
    )
    plan = BackupPlan(
        job_id=1,
        job_slug="bench",
        job_name="bench",
        run_id=1,
        archive_format="tar.zst",
        compression_level=None,
        source=source,
        destinations={1: LocalDestination(args.out)},
        started_at=datetime.now(UTC),
    )
    started = time.perf_counter()
    result = run_backup(plan, RecordingHooks())
    seconds = time.perf_counter() - started
    pid = os.getpid()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss": peak_rss(pid),
                "written": disk_bytes_written(pid),
                "size": result.size,
            }
        )
    )


def _verify(port: int, database: str, out: Path) -> str:
    """Restore the archive with the README's command into a new database and compare
    every row of the table (an order-independent sum of row hashes, and the count)."""
    from tests.servers.postgres import PostgresServer

    server = PostgresServer("127.0.0.1", port)
    archive = next(out.rglob("*.tar.zst"))
    copy = f"{database}_restored"
    with server.connect() as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {copy}")
        connection.execute(f"CREATE DATABASE {copy}")
    command = (
        f"tar -xOf {archive} --wildcards 'postgresql/{database}.dump.part*'"
        f" | pg_restore --no-owner -h 127.0.0.1 -p {port} -U postgres -d {copy} --exit-on-error"
    )
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)  # noqa: S603, S607
    seconds = time.perf_counter() - started
    query = "SELECT count(*), sum(hashtext(o::text)::bigint) FROM orders o"
    with server.connect(database) as original, server.connect(copy) as restored:
        before = original.execute(query).fetchone()
        after = restored.execute(query).fetchone()
    with server.connect() as connection:
        connection.execute(f"DROP DATABASE {copy}")
    verdict = "equal" if before == after else f"DIFFERENT: {before} vs {after}"
    return f"restored with tar -xO | pg_restore in {seconds:.1f} s; {before[0]} rows {verdict}"  # type: ignore[index]


def _mackuper(port: int, database: str, work: Path, verify: bool = False) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(dir=work))
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.pg_dump", "--child", "--port", str(port)]
        + ["--database", database, "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["staged"] = max(0.0, figures["written"] - figures["size"])
    if verify:
        print(_verify(port, database, out), flush=True)
    subprocess.run(["rm", "-rf", str(out)], check=True)  # noqa: S607
    return figures


def _baseline(port: int, database: str, work: Path) -> dict[str, float]:
    target = work / "baseline.dump.zst"
    command = (
        f"pg_dump -h 127.0.0.1 -p {port} -U postgres -Fc -Z0 -d {database}"
        f" | zstd -3 -q -f -o {target} && sync {target}"
    )
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)  # noqa: S603, S607
    seconds = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return {"seconds": seconds, "size": size}


def _fill(server: object, database: str, gib: float) -> int:
    from tests.servers.postgres import PostgresServer

    assert isinstance(server, PostgresServer)  # noqa: S101
    rows = int(gib * 1024**3 / 230)
    with server.connect() as connection:
        connection.execute(f"CREATE DATABASE {database}")
    with server.connect(database) as connection:
        connection.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer int, placed timestamptz,"
            " note text, amount numeric(12,2))"
        )
        step = 500_000
        for first in range(1, rows + 1, step):
            connection.execute(
                "INSERT INTO orders SELECT n, n %% 9973, now() - n * interval '1 second',"
                " md5(n::text) || ' ' || md5((n * 31)::text) || ' '"
                " || repeat(chr(65 + n %% 26), 40) || ' ' || md5((n * 7)::text),"
                " (n %% 100000) / 100.0"
                " FROM generate_series(%s, %s) n",
                (first, min(rows, first + step - 1)),
            )
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None  # noqa: S101
        return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database", default="bench")
    parser.add_argument("--out", default="")
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--verify", action="store_true", help="restore the last archive and compare every row"
    )
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    from tests.servers.postgres import own_cluster

    with own_cluster() as cluster, tempfile.TemporaryDirectory(dir="/var/tmp") as work_dir:
        work = Path(work_dir)
        size = _fill(cluster.server, args.database, args.gib)
        port = cluster.server.port
        print(f"database: {size / MIB:.0f} MiB (pg_database_size); load {os.getloadavg()}")
        baseline: list[dict[str, float]] = []
        ours: list[dict[str, float]] = []
        for repeat in range(args.repeat):
            baseline.append(_baseline(port, args.database, work))
            last = repeat == args.repeat - 1
            ours.append(_mackuper(port, args.database, work, args.verify and last))
        base_seconds = statistics.median(item["seconds"] for item in baseline)
        our_seconds = statistics.median(item["seconds"] for item in ours)
        print(f"load after {os.getloadavg()}\n")
        print("| case | seconds (median) | ratio | peak RSS MiB | staged MiB | output MiB |")
        print("|---|---|---|---|---|---|")
        print(
            f"| pg_dump -Fc -Z0 \\| zstd -3 > file | {base_seconds:.1f} | 1.00 | - | - |"
            f" {baseline[0]['size'] / MIB:.0f} |"
        )
        print(
            f"| Mackuper tar.zst, local | {our_seconds:.1f} | {our_seconds / base_seconds:.2f} |"
            f" {max(item['rss'] for item in ours) / MIB:.0f} |"
            f" {max(item['staged'] for item in ours) / MIB:.1f} |"
            f" {ours[0]['size'] / MIB:.0f} |"
        )
        print("\nruns:", json.dumps({"baseline": baseline, "mackuper": ours}))


if __name__ == "__main__":
    main()
