"""Engine benchmark: Mackuper against GNU tar + gzip/pigz/zstd and restic, side by side.

    .venv/bin/python -m bench.engine [--formats tar.gz tar.zst] [--skip-s3] [--skip-restic]

Builds (once) the reproducible 1 GiB corpus of bench/corpus.py, warms the page
cache, then times each case on the same data:

- Mackuper local -> local directory and local -> S3 (moto on loopback), each in a
  fresh child process running the real pipeline (`run_backup`, per-file hash
  included); "no file hash" repeats tar.zst without the per-file hash to show
  its cost.
- `tar -cf - | gzip -6`, `tar -cf - | pigz -6`, `tar -I 'zstd -3'` into the same
  directory, each followed by `sync FILE`, because Mackuper fsyncs its archive
  before publishing it.
- restic (local repository, and the same moto server).

Prints a Markdown table: seconds, ratio to the matching GNU pipeline, peak RSS of
the process tree, bytes written to disk outside the archive ("staged") and the
archive size, plus the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.corpus import DEFAULT_TARGET, build, size_of

OUT = Path(os.environ.get("BENCH_OUT", Path(__file__).resolve().parent / "out" / "engine"))
MIB = 1024 * 1024


@dataclass
class Figure:
    case: str
    seconds: float
    peak_rss: int
    archive_bytes: int
    staged_bytes: int | None
    baseline: str | None = None


def _child(args: argparse.Namespace) -> None:
    """Run one Mackuper backup in this process and print its figures as JSON."""
    from tests.harness import disk_bytes_written, peak_rss
    from tests.integration.engine_support import RecordingHooks

    from mackuper.destinations.base import Destination
    from mackuper.destinations.local import LocalDestination
    from mackuper.destinations.s3 import S3Destination
    from mackuper.pipeline import run as pipeline_run
    from mackuper.pipeline.run import BackupPlan, run_backup
    from mackuper.sources.local import LocalSource

    if args.no_file_hash:
        pipeline_run._hashing_open = lambda entry: None  # type: ignore[attr-defined]
    destination: Destination
    if args.endpoint:
        destination = S3Destination(
            bucket=args.bucket,
            access_key_id=os.environ["BENCH_S3_KEY"],
            secret_access_key=os.environ["BENCH_S3_SECRET"],
            endpoint_url=args.endpoint,
            path_style=True,
        )
    else:
        destination = LocalDestination(str(args.target.resolve()))
    plan = BackupPlan(
        job_id=1,
        job_slug="bench",
        job_name="bench",
        run_id=1,
        archive_format=args.format,
        compression_level=None,
        source=LocalSource([str(args.corpus)]),
        destinations={1: destination},
        started_at=datetime.now(UTC),
    )
    before = disk_bytes_written(os.getpid())
    started = time.perf_counter()
    result = run_backup(plan, RecordingHooks())
    seconds = time.perf_counter() - started
    written = disk_bytes_written(os.getpid()) - before
    # What the destination holds (archive and manifest) is not staging; anything else is.
    published = 0
    if not args.endpoint:
        published = sum(path.stat().st_size for path in args.target.rglob("*") if path.is_file())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss": peak_rss(os.getpid()),
                "archive_bytes": result.size,
                "staged_bytes": max(0, written - published),
                "problems": result.problems,
            }
        )
    )


def _measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS of the whole waited process tree, stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)  # noqa: S603
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{command} exited with {process.returncode}")
    return seconds, usage.ru_maxrss * 1024, output


def _mackuper(
    corpus: Path, archive_format: str, label: str, extra: list[str], env: dict[str, str] | None
) -> Figure:
    target = OUT / "mackuper"
    shutil.rmtree(target, ignore_errors=True)
    command = [sys.executable, "-m", "bench.engine", "--child", "--format", archive_format]
    command += ["--corpus", str(corpus), "--target", str(target), *extra]
    _wall, tree_rss, output = _measure(command, env)
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    if figures["problems"]:
        raise RuntimeError(f"the backup reported problems: {figures['problems']}")
    return Figure(
        label,
        figures["seconds"],
        max(tree_rss, figures["peak_rss"]),
        figures["archive_bytes"],
        figures["staged_bytes"],
    )


def _shell(corpus: Path, label: str, pipeline: str, name: str) -> Figure:
    archive = OUT / name
    archive.unlink(missing_ok=True)
    script = pipeline.format(corpus=corpus, archive=archive) + f" && sync {archive}"
    seconds, rss, _ = _measure(["bash", "-o", "pipefail", "-c", script])
    return Figure(label, seconds, rss, archive.stat().st_size, None)


def _restic(corpus: Path, label: str, repository: str, env: dict[str, str]) -> Figure:
    env = {**os.environ, **env, "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(OUT / "rc")}
    if repository.startswith("/"):
        shutil.rmtree(repository, ignore_errors=True)
    subprocess.run(["restic", "-q", "-r", repository, "init"], env=env, check=True)  # noqa: S603
    seconds, rss, _ = _measure(["restic", "-q", "-r", repository, "backup", str(corpus)], env)
    size = 0
    if repository.startswith("/"):
        size = sum(path.stat().st_size for path in Path(repository).rglob("*") if path.is_file())
    return Figure(label, seconds, rss, size, None)


def _table(figures: list[Figure], baselines: dict[str, float]) -> str:
    lines = [
        "| case | seconds | ratio | peak RSS MiB | staged bytes | archive MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for figure in figures:
        ratio = (
            f"{figure.seconds / baselines[figure.baseline]:.2f}"
            if figure.baseline in baselines
            else ""
        )
        staged = "" if figure.staged_bytes is None else str(figure.staged_bytes)
        case = figure.case.replace("|", "\\|")
        lines.append(
            f"| {case} | {figure.seconds:.1f} | {ratio} | {figure.peak_rss / MIB:.0f}"
            f" | {staged} | {figure.archive_bytes / MIB:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--format", default="tar.zst", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--target", type=Path, default=OUT / "mackuper", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", default="", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", default="", help=argparse.SUPPRESS)
    parser.add_argument("--no-file-hash", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--formats", nargs="+", default=["tar.gz", "tar.zst"])
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-restic", action="store_true")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    corpus = build(args.corpus)
    total, files = size_of(corpus)
    OUT.mkdir(parents=True, exist_ok=True)
    subprocess.run(f"tar -cf - {corpus} | cat > /dev/null", shell=True, check=True)  # noqa: S602
    load_before = os.getloadavg()
    print(f"corpus: {files} files, {total / 2**30:.3f} GiB; load {load_before}", flush=True)
    figures: list[Figure] = []
    baselines: dict[str, float] = {}

    def add(figure: Figure) -> None:
        figures.append(figure)
        print(figure, flush=True)

    gnu = {
        "tar.gz": ("tar -cf - | gzip -6", "tar -cf - {corpus} | gzip -6 > {archive}"),
        "tar.zst": ("tar -I 'zstd -3'", "tar -I 'zstd -3' -cf {archive} {corpus}"),
    }
    for archive_format in args.formats:
        label, pipeline = gnu[archive_format]
        baseline = _shell(corpus, label, pipeline, "gnu." + archive_format)
        baselines[label] = baseline.seconds
        add(baseline)
        figure = _mackuper(corpus, archive_format, f"Mackuper {archive_format} -> local", [], None)
        figure.baseline = label
        add(figure)
    if "tar.gz" in args.formats:
        add(
            _shell(
                corpus, "tar -cf - | pigz -6", "tar -cf - {corpus} | pigz -6 > {archive}", "pigz"
            )
        )
    if "tar.zst" in args.formats:
        figure = _mackuper(
            corpus, "tar.zst", "Mackuper tar.zst -> local, no file hash", ["--no-file-hash"], None
        )
        figure.baseline = gnu["tar.zst"][0]
        add(figure)
    if not args.skip_restic:
        add(_restic(corpus, "restic -> local repository", str(OUT / "restic-repo"), {}))
    if not args.skip_s3:
        from tests.servers.s3 import running_moto

        with running_moto() as s3:
            env = {**os.environ, "BENCH_S3_KEY": s3.access_key, "BENCH_S3_SECRET": s3.secret_key}
            for archive_format in args.formats:
                bucket = s3.make_bucket()
                figure = _mackuper(
                    corpus,
                    archive_format,
                    f"Mackuper {archive_format} -> S3 (moto)",
                    ["--endpoint", s3.endpoint_url, "--bucket", bucket],
                    env,
                )
                figure.baseline = gnu[archive_format][0]
                add(figure)
            if not args.skip_restic:
                bucket = s3.make_bucket()
                restic_env = {
                    "AWS_ACCESS_KEY_ID": s3.access_key,
                    "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                }
                repository = f"s3:{s3.endpoint_url}/{bucket}"
                add(_restic(corpus, "restic -> S3 (moto)", repository, restic_env))
    print()
    print(f"load average before: {load_before}, after: {os.getloadavg()}; {os.cpu_count()} cores")
    print(_table(figures, baselines))


if __name__ == "__main__":
    main()
