"""Mackuper's SSH source against the raw `ssh host tar cf - dir > /dev/null` on the same sshd.

Starts the throwaway sshd from tests.servers (needs root), uses the corpus from
bench.ssh_corpus, and alternates the two, best of --repeat each:

raw       `ssh <same options as Mackuper> tar cf - -C / dir > /dev/null`
mackuper  SSHSource (tar or sftp mode) -> TAR, no compression -> local destination

    .venv/bin/python -m bench.ssh_throughput [--mib 1024] [--repeat 3] [--mode tar]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.integration.engine_support import RecordingHooks
from tests.servers.sshd import SSHServer, running_sshd

from bench.ssh_corpus import ensure_corpus
from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.ssh import SSHSource
from mackuper.sources.ssh_connect import HostKey, SSHTarget
from mackuper.sources.ssh_tar import _Session


def _target(server: SSHServer) -> SSHTarget:
    user = server.users["key"]
    return SSHTarget(
        host=server.host,
        port=server.port,
        username=user.username,
        auth="key",
        host_key=HostKey.parse(server.host_public_key),
        private_key=user.private_key or "",
    )


def raw(server: SSHServer, corpus: Path) -> int:
    session = _Session(_target(server))
    try:
        argv = [*session.argv, f"tar cf - -C / {str(corpus).lstrip('/')}"]
        with open(os.devnull, "wb") as sink:
            subprocess.run(argv, stdout=sink, env=session.env, check=True)  # noqa: S603
    finally:
        session.close()
    return sum(path.stat().st_size for path in corpus.rglob("*") if path.is_file())


def mackuper(server: SSHServer, corpus: Path, mode: str, output: Path) -> int:
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    plan = BackupPlan(
        job_id=1,
        job_slug="bench",
        job_name="bench",
        run_id=1,
        archive_format="tar",
        compression_level=None,
        source=SSHSource(_target(server), [str(corpus)], transfer=mode),
        destinations={1: LocalDestination(str(output))},
        started_at=datetime.now(UTC),
    )
    result = run_backup(plan, RecordingHooks())
    if result.problems:
        raise RuntimeError(f"problems: {result.problems[:3]}")
    return result.bytes_read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", default="tar", choices=["tar", "sftp"])
    args = parser.parse_args()
    corpus = ensure_corpus(args.mib)
    best = {"raw": float("inf"), "mackuper": float("inf")}
    size = 0
    print("load average before:", os.getloadavg())
    with running_sshd() as server, tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:  # noqa: S108
        for _ in range(args.repeat):
            for name in ("raw", "mackuper"):
                started = time.perf_counter()
                if name == "raw":
                    size = raw(server, corpus)
                else:
                    mackuper(server, corpus, args.mode, Path(scratch) / "out")
                elapsed = time.perf_counter() - started
                best[name] = min(best[name], elapsed)
                print(f"  {name:9s} {elapsed:6.2f} s  {size / 2**20 / elapsed:7.1f} MiB/s")
    mib = size / 2**20
    print(f"corpus {mib:.0f} MiB, mode {args.mode}, best of {args.repeat}")
    for name, seconds in best.items():
        print(f"{name:9s} {seconds:6.2f} s  {mib / seconds:7.1f} MiB/s")
    print(f"ratio mackuper/raw throughput: {best['raw'] / best['mackuper']:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
