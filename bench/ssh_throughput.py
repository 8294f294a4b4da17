"""Mackuper's SSH source against the raw `ssh host tar cf - dir > /dev/null` on the same sshd.

Starts the throwaway sshd from tests.servers (needs root), uses the corpus from
bench.ssh_corpus, alternates the three cases and prints the best and the median
of --repeat rounds:

raw       `ssh <Mackuper's options> tar cf - -C / dir > /dev/null`, twice: with
          OpenSSH's default cipher order (what `ssh host tar cf - dir` gets) and
          with Mackuper's (AES-GCM first where the CPU has AES instructions)
mackuper  SSHSource (tar or sftp mode) -> TAR, no compression -> local destination
          (the run itself; clearing the previous output is not timed)

    .venv/bin/python -m bench.ssh_throughput [--mib 1024] [--repeat 3] [--mode tar]
        [--engine-corpus]

Each round also prints "machine CPU": the busy CPU-seconds of the whole machine
(/proc/stat) over the case, server side included (tar and sshd share the two cores on
loopback).

--engine-corpus uses bench/corpus.py's 1 GiB corpus (20,104 files, most of them
small: issue 23, item 6) instead of bench/ssh_corpus.py's 8,480 mostly large ones.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.integration.engine_support import RecordingHooks
from tests.servers.sshd import SSHServer, running_sshd

from bench.corpus import DEFAULT_TARGET, build
from bench.ssh_corpus import ensure_corpus
from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.ssh import SSHSource
from mackuper.ssh import HostKey, OpenSSHSession, SSHTarget, preferred_ciphers


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


def raw(server: SSHServer, corpus: Path, *, openssh_ciphers: bool) -> None:
    """`ssh ... tar cf - dir > /dev/null` with Mackuper's options, or OpenSSH's default ciphers."""
    session = OpenSSHSession(_target(server))
    try:
        argv = list(session.argv)
        if openssh_ciphers and "-o" in argv:
            argv = [
                arg
                for index, arg in enumerate(argv)
                if not arg.startswith("Ciphers=")
                and not (arg == "-o" and argv[index + 1].startswith("Ciphers="))
            ]
        argv.append(f"tar cf - -C / {str(corpus).lstrip('/')}")
        with open(os.devnull, "wb") as sink:
            subprocess.run(argv, stdout=sink, env=session.env, check=True)  # noqa: S603
    finally:
        session.close()


def mackuper(server: SSHServer, corpus: Path, mode: str, output: Path) -> int:
    """One backup into `output`, which must exist and be empty (clearing it is not timed)."""
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


CASES = ("raw, OpenSSH's ciphers", "raw, Mackuper's ciphers", "mackuper")


def _cpu() -> float:
    """CPU seconds of this process and its waited children (the ssh client): the
    local side's work, which the machine's load does not change much."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _machine_busy() -> tuple[float, float]:
    """Busy CPU-seconds of the whole machine so far (/proc/stat), and of those the ones
    stolen by the hypervisor: the server's tar and sshd share these two cores on
    loopback, so busy is what a case costs in all; steal is time the VM wanted to run and
    another guest ran instead (a round with seconds of it measured the neighbours)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, fields[7] / tick


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", default="tar", choices=["tar", "sftp"])
    parser.add_argument("--engine-corpus", action="store_true")
    args = parser.parse_args()
    corpus = build(DEFAULT_TARGET) if args.engine_corpus else ensure_corpus(args.mib)
    size = sum(path.stat().st_size for path in corpus.rglob("*") if path.is_file())
    times: dict[str, list[float]] = {name: [] for name in CASES}
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    print("load average before:", os.getloadavg())
    print("Mackuper's cipher preference:", preferred_ciphers() or "OpenSSH's default")
    with running_sshd() as server, tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:  # noqa: S108
        for _ in range(args.repeat):
            for name in CASES:
                output = Path(scratch) / "out"
                shutil.rmtree(output, ignore_errors=True)  # deleting 1 GiB takes ~0.2 s
                output.mkdir()
                started, cpu_before, busy_before = time.perf_counter(), _cpu(), _machine_busy()
                if name == "mackuper":
                    mackuper(server, corpus, args.mode, output)
                else:
                    raw(server, corpus, openssh_ciphers="OpenSSH" in name)
                elapsed = time.perf_counter() - started
                times[name].append(elapsed)
                cpu[name].append(_cpu() - cpu_before)
                busy_after = _machine_busy()
                busy = busy_after[0] - busy_before[0]
                stolen = busy_after[1] - busy_before[1]
                print(
                    f"  {name:24s} {elapsed:6.2f} s  {size / 2**20 / elapsed:7.1f} MiB/s"
                    f"  local CPU {cpu[name][-1]:5.2f} s  machine CPU {busy:5.2f} s"
                    f" (stolen {stolen:4.2f})"
                )
    mib = size / 2**20
    print(f"corpus {mib:.0f} MiB, mode {args.mode}, {args.repeat} rounds, best and median")
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    for name in CASES:
        print(
            f"{name:24s} best {best[name]:6.2f} s ({mib / best[name]:6.1f} MiB/s)"
            f"  median {median[name]:6.2f} s"
            f"  local CPU median {statistics.median(cpu[name]):5.2f} s"
        )
    for name in CASES[:2]:
        # Each round's Mackuper case against the raw case run just before it: a noisy
        # stretch of the host slows both, so the per-round ratio varies less.
        paired = [raw / ours for raw, ours in zip(times[name], times["mackuper"], strict=True)]
        print(
            f"mackuper / {name}: {best[name] / best['mackuper']:.2f} (best),"
            f" {median[name] / median['mackuper']:.2f} (median),"
            f" {statistics.median(paired):.2f} (median of the rounds' own ratios)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
