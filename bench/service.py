"""Speed and memory as a user gets them: jobs run by the worker of `mackuper serve`.

    .venv/bin/python -m bench.service [--rounds 2] [--formats tar.zst tar.gz]
        [--skip-restic] [--corpus bench/corpus/engine] [--extra-gib 0] [--recycle-mib N]

Builds (once) the 1 GiB corpus of bench/corpus.py and warms the page cache. Starts
`mackuper serve` exactly as a user does (SQLite under a temp directory, the worker's
default 1 s poll, a local destination), creates one job per format over the API and
presses "Run now". Each round times, on the same data and one after another:

- `tar -cf - DIR | zstd -3 > FILE; sync FILE` and the tar.zst job;
- `tar -cf - DIR | pigz -6 > FILE; sync FILE` and the tar.gz job;
- restic's first backup into a fresh local repository.

Wall time is what a person waits; CPU seconds (the pipeline's processes, the
worker process's threads) show the work done, which a loaded machine does not hide.

For a job: the run's own duration (`finished_at - started_at`, stamped by the worker)
and "Run now" to the API reporting success (the client asks every 50 ms). The
worker process's peak RSS (VmHWM, started over before each "Run now" through
/proc/PID/clear_refs, so each run's own peak is seen) and the bytes it wrote outside the
archives are read from /proc. Prints medians over the rounds, and ratios to the pipeline each
job replaces.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tests.harness import (
    FINAL_STATUSES,
    BrowserClient,
    disk_bytes_written,
    peak_rss,
    running_mackuper,
)
from tests.servers.process import descendant_pids

from bench.corpus import DEFAULT_TARGET, build, size_of

MIB = 1 << 20
POLL = 0.05
GNU = {
    "tar.zst": "tar -cf - {corpus} | zstd -q -3 > {archive}",
    "tar.gz": "tar -cf - {corpus} | pigz -6 > {archive}",
}


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pid: int) -> float:
    """User plus system CPU seconds of process `pid` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _shell(corpus: Path, out: Path, archive_format: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the whole pipeline, archive bytes)."""
    archive = out / f"gnu.{archive_format}"
    archive.unlink(missing_ok=True)
    script = GNU[archive_format].format(corpus=corpus, archive=archive) + f" && sync {archive}"
    cpu = _cpu_of_children()
    seconds = _timed(lambda: subprocess.run(["bash", "-o", "pipefail", "-c", script], check=True))  # noqa: S603, S607
    return seconds, _cpu_of_children() - cpu, archive.stat().st_size


def _restic(corpus: Path, out: Path) -> float:
    repository = out / "restic"
    shutil.rmtree(repository, ignore_errors=True)
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(out / "rc")}
    subprocess.run(["restic", "-q", "-r", str(repository), "init"], env=env, check=True)  # noqa: S603, S607
    backup = ["restic", "-q", "-r", str(repository), "backup", str(corpus)]
    return _timed(lambda: subprocess.run(backup, env=env, check=True))  # noqa: S603


def _reset_peak(pid: int) -> None:
    """Start VmHWM over from the current RSS (Linux: `5` to /proc/PID/clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class PeakWatch:
    """The highest VmHWM of `pid` seen, read every 5 ms on a thread while the block runs.

    Read once after a run, the peak could be gone: a worker that grew executes itself
    afresh as soon as it is idle (MACKUPER_WORKER_RECYCLE_MIB), which starts VmHWM over.
    One round of 2026-12-01 printed a 9 MiB "peak" that way."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while True:
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, peak_rss(self.pid))
            if self._done.wait(0.005):
                return

    def __enter__(self) -> PeakWatch:
        _reset_peak(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/PID/status")


def _worker_pid(serve_pid: int) -> int:
    for pid in descendant_pids(serve_pid):
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"worker" in command:
            return pid
    raise RuntimeError("no worker process under mackuper serve")


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _run(browser: BrowserClient, job_id: int) -> tuple[float, float, int]:
    """Run now; (run duration, Run now -> success seen, archive bytes)."""
    clicked = time.perf_counter()
    run = browser.ok("POST", f"/api/jobs/{job_id}/run")["run"]
    while run["status"] not in FINAL_STATUSES:
        time.sleep(POLL)
        run = browser.ok("GET", f"/api/runs/{run['id']}")["run"]
    seen = time.perf_counter() - clicked
    if run["status"] != "success":
        raise RuntimeError(f"run {run['id']} ended {run['status']}: {run.get('error')}")
    duration = _at(run["finished_at"]) - _at(run["started_at"])
    return duration, seen, int(run["bytes_written"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--formats", nargs="+", default=["tar.zst", "tar.gz"], choices=list(GNU))
    parser.add_argument("--skip-restic", action="store_true")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--extra-gib", type=int, default=0, help="see bench/corpus.py")
    parser.add_argument(
        "--recycle-mib",
        type=int,
        default=None,
        help="MACKUPER_WORKER_RECYCLE_MIB for the worker (default: the product's, 16; 0: off)",
    )
    args = parser.parse_args()

    corpus = build(args.corpus.resolve(), args.extra_gib)
    total, files = size_of(corpus)
    subprocess.run(f"tar -cf - {corpus} | cat > /dev/null", shell=True, check=True)  # noqa: S602
    print(f"corpus: {files} files, {total / 2**30:.3f} GiB; load {os.getloadavg()}", flush=True)
    figures: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}

    def note(case: str, value: float) -> None:
        figures.setdefault(case, []).append(value)
        print(f"{case}: {value:.2f}", flush=True)

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR", "/var/tmp")) as root:
        out = Path(root)
        env = {"MACKUPER_WORKER_POLL_SECONDS": "1"}
        if args.recycle_mib is not None:
            env["MACKUPER_WORKER_RECYCLE_MIB"] = str(args.recycle_mib)
        with running_mackuper(out / "data", env) as server:
            assert server.server is not None and server.server.pid is not None
            worker = _worker_pid(server.server.pid)
            written_before = disk_bytes_written(worker)
            peaks: list[int] = [peak_rss(worker)]
            print(f"worker RSS at idle: {_rss(worker) / MIB:.0f} MiB", flush=True)
            browser = BrowserClient(server.url)
            disk = browser.complete_setup(
                {"name": "Disk", "kind": "local", "path": str(out / "backups")}
            )
            jobs = {
                archive_format: browser.create_job(
                    f"Corpus {archive_format}", corpus, disk["id"], archive_format=archive_format
                )["id"]
                for archive_format in args.formats
            }
            archived = 0
            for _round in range(args.rounds):
                for archive_format in args.formats:
                    gnu, gnu_cpu, size = _shell(corpus, out, archive_format)
                    note(f"gnu {archive_format}", gnu)
                    note(f"gnu {archive_format} CPU", gnu_cpu)
                    sizes[f"gnu {archive_format}"] = size
                    cpu = _cpu_of(worker)
                    with PeakWatch(worker) as watch:
                        duration, seen, size = _run(browser, jobs[archive_format])
                    peaks.append(watch.peak)
                    note(f"mackuper {archive_format} peak RSS MiB", peaks[-1] / MIB)
                    note(f"mackuper {archive_format} run", duration)
                    note(f"mackuper {archive_format} Run now -> seen", seen)
                    note(f"mackuper {archive_format} CPU", _cpu_of(worker) - cpu)
                    sizes[f"mackuper {archive_format}"] = size
                    archived += size
                if not args.skip_restic:
                    note("restic first backup", _restic(corpus, out))
            rss = max(peaks)
            staged = disk_bytes_written(worker) - written_before - archived

    medians = {case: statistics.median(values) for case, values in figures.items()}
    print(f"\nmedians over {args.rounds} rounds; load after {os.getloadavg()}")
    print("| case | seconds | ratio |\n|---|---:|---:|")
    for case, seconds in medians.items():
        ratio = ""
        for archive_format in args.formats:
            if case.endswith("MiB"):
                continue
            if case == f"mackuper {archive_format} CPU":
                ratio = f"{seconds / medians[f'gnu {archive_format} CPU']:.2f}"
            elif case.startswith(f"mackuper {archive_format}"):
                ratio = f"{seconds / medians[f'gnu {archive_format}']:.2f}"
        if case.startswith("mackuper tar.zst run") and "restic first backup" in medians:
            ratio += f" ({seconds / medians['restic first backup']:.2f} of restic)"
        print(f"| {case} | {seconds:.2f} | {ratio} |")
    for case, size in sizes.items():
        print(f"size {case}: {size / MIB:.1f} MiB")
    print(f"worker peak RSS (VmHWM): {rss / MIB:.0f} MiB")
    print(f"worker bytes written outside the archives: {staged / MIB:.1f} MiB")


if __name__ == "__main__":
    main()
