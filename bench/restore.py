"""Restore benchmark (issue 21): frame cost, one file out of a big archive, full restores.

    .venv/bin/python -m bench.restore frames          # ratio cost of independent frames
    .venv/bin/python -m bench.restore single [--gib 4] [--server moto|rclone]
        [--format tar.zst tar.zst.age] [--rclone-buffer-size 0]
    .venv/bin/python -m bench.restore full [--rounds 3] # 1 GiB corpus from S3, side by side
    .venv/bin/python -m bench.restore full --hold      # the same set-up, kept up for timing
        one case at a time: --child mackuper|boto3-tar --target DIR

- frames: the bench corpus (bench/corpus.py) as one tar stream, compressed at
  level 3 as a single zstd frame and as independent frames of 1 to 16 MiB
  (`SeekableZstdStage`, the seek table included), with the cost in size of each.
- single: a tar.zst of GIB GiB of incompressible files written by the real
  pipeline to moto (or `rclone serve s3`) on loopback; then single files are
  downloaded as the web page does (`extract_path`), timed, with the bytes fetched
  from S3 counted by the client, and the bytes the server process itself read
  (its `rchar` in /proc), beside one plain boto3 ranged GET of 4 MiB for scale:
  moto reads the whole object for every GET, ranged or not, `rclone serve s3`
  reads the range from its file.
- full: the corpus backed up to moto as tar.zst; then, each in a fresh process and
  a fresh directory, in turns: Mackuper's full restore (`open_members` and the
  `Extractor`, as a restore run does), a plain boto3 download piped into
  `tar -I zstd -x`, and `restic restore` of the same corpus from a repository on
  the same moto. Medians of the rounds, and ratios to the boto3 | tar pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from bench.corpus import DEFAULT_TARGET, build, size_of

MIB = 1 << 20
OUT = Path(os.environ.get("BENCH_OUT", Path(__file__).resolve().parent / "out" / "restore"))


class _Collect:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)

    def close(self) -> None:
        return None


def frames(corpus: Path) -> None:
    import zstandard

    from mackuper.pipeline.seekable import SeekableZstdStage

    tar = OUT / "corpus.tar"
    OUT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-cf", str(tar), "-C", str(corpus.parent), corpus.name], check=True)
    rows: list[tuple[str, int, float]] = []
    started = time.perf_counter()
    single = _Collect()
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
    with tar.open("rb") as handle:
        while chunk := handle.read(MIB):
            single.write(compressor.compress(chunk))
    single.write(compressor.flush())
    rows.append(("one frame (plain zstd -3)", single.size, time.perf_counter() - started))
    for frame_mib in (1, 2, 4, 8, 16):
        sink = _Collect()
        started = time.perf_counter()
        stage = SeekableZstdStage(sink, 3, threads=0, frame_size=frame_mib * MIB)
        with tar.open("rb") as handle:
            while chunk := handle.read(MIB):
                stage.write(chunk)
        stage.close()
        rows.append((f"{frame_mib} MiB frames", sink.size, time.perf_counter() - started))
    tar.unlink()
    print(f"tar stream of the corpus: {size_of(corpus)[0] / 2**30:.3f} GiB of files")
    print("| compression | archive bytes | cost vs one frame | seconds |")
    print("|---|---:|---:|---:|")
    for label, size, seconds in rows:
        cost = 100 * (size - single.size) / single.size
        print(f"| {label} | {size:,} | {cost:+.2f}% | {seconds:.1f} |")


@dataclass
class _Counting:
    """A destination that counts what is read from it (everything else passes through)."""

    inner: Any
    fetched: int = 0
    requests: int = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        data: bytes = self.inner.read_range(key, offset, length)
        self.fetched += len(data)
        self.requests += 1
        return data

    def iter_chunks(self, key: str, chunk_size: int = MIB) -> Iterator[bytes]:
        for chunk in self.inner.iter_chunks(key, chunk_size):
            self.fetched += len(chunk)
            self.requests += 1
            yield chunk


class _Random(io.RawIOBase):
    """`size` bytes of a random pool from `start`: incompressible, made at memory speed."""

    def __init__(self, pool: bytes, start: int, size: int) -> None:
        self.pool, self.position, self.left = pool, start, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self.left, len(self.pool) - self.position)
        if count <= 0:
            return 0
        buffer[:count] = self.pool[self.position : self.position + count]
        self.position = (self.position + count) % len(self.pool)
        self.left -= count
        return count


class _BigSource:
    """GIB GiB in 4 MiB files, with small text files at the start, middle and end."""

    def __init__(self, gib: int) -> None:
        self.files = gib * 256
        self.pool = random.Random(21).randbytes(64 * MIB)  # noqa: S311 - test data

    def describe(self) -> str:
        return f"{self.files} generated files"

    def iter_entries(self, reporter: Any) -> Iterator[Any]:
        from mackuper.sources.base import Entry, EntryType

        def small(name: str) -> Any:
            text = (f"{name}\n" * 200).encode()
            return Entry(name, EntryType.FILE, len(text), 0o644, 0, open=lambda: io.BytesIO(text))

        yield small("big/a-first.txt")
        for index in range(self.files):
            if index == self.files // 2:
                yield small("big/m-middle.txt")
            start = (index * 4 * MIB + index * 4099) % len(self.pool)

            def opener(start: int = start) -> BinaryIO:
                return io.BufferedReader(_Random(self.pool, start, 4 * MIB))

            yield Entry(f"big/data-{index:05d}.bin", EntryType.FILE, 4 * MIB, 0o644, 0, open=opener)
        yield small("big/z-last.txt")

    def close(self) -> None:
        return None


def _server_reads(pid: int | None) -> int:
    """Bytes the server process (and its children) has read so far: `rchar` of
    /proc/PID/io, every read system call, from files (the object) and sockets (requests)."""
    from tests.servers.process import descendant_pids

    if pid is None:
        return 0
    total = 0
    for each in [pid, *descendant_pids(pid)]:
        try:
            text = Path(f"/proc/{each}/io").read_text()
        except OSError:
            continue
        total += next(
            int(line.split()[1]) for line in text.splitlines() if line.startswith("rchar")
        )
    return total


def single(gib: int, server: str, formats: list[str], rclone_buffer: str) -> None:
    from tests.integration.engine_support import RecordingHooks
    from tests.servers.s3 import running_moto, running_rclone

    from mackuper.destinations.s3 import S3Destination
    from mackuper.pipeline.age import X25519Identity
    from mackuper.pipeline.run import BackupPlan, run_backup
    from mackuper.restore.archives import DecryptionKeys, StoredArchive
    from mackuper.restore.download import extract_path

    identity = X25519Identity.generate()
    # rclone reads ahead of what a GET asks for, up to --buffer-size (16 MiB unless set).
    extra = ["--buffer-size", rclone_buffer] if rclone_buffer else []
    with running_moto() if server == "moto" else running_rclone(extra) as s3:
        bucket = s3.make_bucket()
        pid = s3.process.pid if s3.process is not None else None
        destination = S3Destination(
            bucket=bucket,
            access_key_id=s3.access_key,
            secret_access_key=s3.secret_key,
            region=s3.region,
            endpoint_url=s3.endpoint_url,
            path_style=True,
            read_timeout=1800,  # moto joins 4 GiB of parts in one request
            retry_seconds=600,
        )
        for archive_format in formats:
            age = archive_format.endswith(".age")
            plan = BackupPlan(
                job_id=1,
                job_slug=f"big-{archive_format.replace('.', '-')}",
                job_name="big",
                run_id=1,
                archive_format=archive_format.removesuffix(".age"),
                compression_level=None,
                source=_BigSource(gib),
                destinations={1: destination},
                started_at=datetime.now(UTC),
                encryption=[identity.recipient()] if age else None,
            )
            started = time.perf_counter()
            hooks = RecordingHooks()
            result = run_backup(plan, hooks)
            (key,) = [artifact["key"] for artifact in hooks.artifacts.values()]
            print(
                f"{archive_format} backup of {gib} GiB: {result.size:,} bytes"
                f" in {time.perf_counter() - started:.0f} s"
            )
            keys = DecryptionKeys([str(identity)]) if age else DecryptionKeys()
            print(f"{s3.name}; load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
            print(
                "| file | size | seconds | bytes fetched | share of the archive | requests"
                " | bytes the server read | share of the archive |"
            )
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            client = s3.client(read_timeout=1800)
            # The first request of an object: rclone hashes the whole file for its ETag
            # (MD5), once; a real S3 keeps the ETag it made at the upload.
            before = _server_reads(pid)
            started = time.perf_counter()
            client.head_object(Bucket=bucket, Key=key)
            seconds = time.perf_counter() - started
            read = _server_reads(pid) - before
            print(
                f"| HEAD, the first request of the object | | {seconds:.2f} | 0 | | 1"
                f" | {read:,} | {100 * read / result.size:.3f}% |"
            )
            # The server's own price for one ranged read of a frame, without Mackuper.
            before = _server_reads(pid)
            started = time.perf_counter()
            frame = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{4 * MIB - 1}")
            size = len(frame["Body"].read())
            seconds = time.perf_counter() - started
            read = _server_reads(pid) - before
            print(
                f"| boto3 ranged GET of 4 MiB, for scale | {size:,} | {seconds:.2f} | {size:,}"
                f" | {100 * size / result.size:.3f}% | 1 | {read:,}"
                f" | {100 * read / result.size:.3f}% |"
            )
            picks = ["a-first.txt", "m-middle.txt", f"data-{gib * 128 + 7:05d}.bin", "z-last.txt"]
            for name in picks:
                counting = _Counting(destination)
                archive = StoredArchive(counting, key, keys)  # type: ignore[arg-type]
                before = _server_reads(pid)
                started = time.perf_counter()
                download = extract_path(archive, f"big/{name}")
                size = sum(len(chunk) for chunk in download.body)
                seconds = time.perf_counter() - started
                read = _server_reads(pid) - before
                print(
                    f"| {name} | {size:,} | {seconds:.2f} | {counting.fetched:,}"
                    f" | {100 * counting.fetched / result.size:.3f}% | {counting.requests}"
                    f" | {read:,} | {100 * read / result.size:.3f}% |"
                )
            client.delete_object(Bucket=bucket, Key=key)


def _child(args: argparse.Namespace) -> None:
    """One timed full restore in a fresh process; prints its seconds."""
    import boto3

    env = os.environ
    started = time.perf_counter()
    if args.child == "boto3-tar":
        client = boto3.client(
            "s3",
            endpoint_url=env["BENCH_S3_URL"],
            aws_access_key_id=env["BENCH_S3_KEY"],
            aws_secret_access_key=env["BENCH_S3_SECRET"],
            region_name="us-east-1",
        )
        body = client.get_object(Bucket=env["BENCH_S3_BUCKET"], Key=env["BENCH_S3_OBJECT"])["Body"]
        tar = subprocess.Popen(
            ["tar", "-I", "zstd", "-x", "-C", args.target], stdin=subprocess.PIPE
        )  # noqa: S603, S607
        assert tar.stdin is not None
        for chunk in body.iter_chunks(MIB):
            tar.stdin.write(chunk)
        tar.stdin.close()
        if tar.wait() != 0:
            raise RuntimeError("tar failed")
    else:
        from mackuper.destinations.s3 import S3Destination
        from mackuper.restore.archives import StoredArchive, open_members
        from mackuper.restore.extract import ExtractOptions, Extractor
        from mackuper.restore.targets import LocalTarget

        destination = S3Destination(
            bucket=env["BENCH_S3_BUCKET"],
            access_key_id=env["BENCH_S3_KEY"],
            secret_access_key=env["BENCH_S3_SECRET"],
            endpoint_url=env["BENCH_S3_URL"],
            path_style=True,
        )

        class Hooks:
            def log(self, level: str, message: str) -> None:
                if level != "info":
                    print(level, message, file=sys.stderr)

            def progress(self, **values: Any) -> None:
                return None

        target = LocalTarget(args.target)
        try:
            extractor = Extractor(target, ExtractOptions(), Hooks())
            with open_members(StoredArchive(destination, env["BENCH_S3_OBJECT"])) as members:
                report = extractor.run(members)
        finally:
            target.close()
        if report.failed or report.refused:
            raise RuntimeError(f"the restore failed: {report.as_dict()}")
    print(json.dumps({"seconds": time.perf_counter() - started}))


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, CPU seconds: user + system of the command and everything it ran)."""
    started, cpu = time.perf_counter(), _cpu_of_children()
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout  # noqa: S603
    lines = [line for line in output.splitlines() if line.startswith("{")]
    seconds = float(json.loads(lines[-1])["seconds"]) if lines else time.perf_counter() - started
    return seconds, _cpu_of_children() - cpu


def full(corpus: Path, rounds: int, hold: bool = False) -> None:
    from tests.integration.engine_support import RecordingHooks
    from tests.servers.s3 import running_moto
    from tests.trees import file_hashes

    from mackuper.destinations.s3 import S3Destination
    from mackuper.pipeline.run import BackupPlan, run_backup
    from mackuper.sources.local import LocalSource

    with running_moto() as s3, tempfile.TemporaryDirectory(prefix="mkp-restore-") as work:
        bucket = s3.make_bucket()
        destination = S3Destination(
            bucket=bucket,
            access_key_id=s3.access_key,
            secret_access_key=s3.secret_key,
            region=s3.region,
            endpoint_url=s3.endpoint_url,
            path_style=True,
        )
        plan = BackupPlan(
            job_id=1,
            job_slug="corpus",
            job_name="corpus",
            run_id=1,
            archive_format="tar.zst",
            compression_level=None,
            source=LocalSource([str(corpus)]),
            destinations={1: destination},
            started_at=datetime.now(UTC),
        )
        result = run_backup(plan, RecordingHooks())
        key = next(
            item["Key"]
            for item in s3.client().list_objects_v2(Bucket=bucket)["Contents"]
            if item["Key"].endswith(".tar.zst")
        )
        restic_bucket = s3.make_bucket()
        restic_env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "RESTIC_PASSWORD": "bench",
            "RESTIC_REPOSITORY": f"s3:{s3.endpoint_url}/{restic_bucket}",
            "RESTIC_CACHE_DIR": str(Path(work) / "restic-cache"),
        }
        subprocess.run(["restic", "-q", "init"], env=restic_env, check=True)  # noqa: S607
        subprocess.run(["restic", "-q", "backup", str(corpus)], env=restic_env, check=True)  # noqa: S607
        env = {
            **os.environ,
            "BENCH_S3_URL": s3.endpoint_url,
            "BENCH_S3_KEY": s3.access_key,
            "BENCH_S3_SECRET": s3.secret_key,
            "BENCH_S3_BUCKET": bucket,
            "BENCH_S3_OBJECT": key,
        }
        if hold:
            _hold(env, restic_env)
            return
        expected = file_hashes(corpus)
        me = [sys.executable, "-m", "bench.restore", "full", "--child"]
        cases = {
            "boto3 download | tar -I zstd -x": lambda target: _timed(
                [*me, "boto3-tar", "--target", target], env
            ),
            "Mackuper full restore": lambda target: _timed(
                [*me, "mackuper", "--target", target], env
            ),
            "restic restore": lambda target: _timed(
                ["restic", "-q", "restore", "latest", "--target", target], restic_env
            ),
        }
        times: dict[str, list[float]] = {case: [] for case in cases}
        cpu: dict[str, list[float]] = {case: [] for case in cases}
        load = [os.getloadavg()[0]]
        for round_number in range(rounds):
            for index, (case, run) in enumerate(cases.items()):
                # A new directory each time, all removed at the end: on ext4 without a
                # journal (this machine's root) a new file skips, one by one, the inodes
                # freed in the last minutes, so restoring right after removing the last
                # round's 20,000 files spent most of its system time in that scan
                # (`recently_deleted` in a perf profile), whatever the program.
                target = Path(work) / f"target-{round_number}-{index}"
                target.mkdir()
                subprocess.run(["sync"], check=True)  # noqa: S607
                seconds, used = run(str(target))
                times[case].append(seconds)
                cpu[case].append(used)
                restored = target / str(corpus).lstrip("/")
                if round_number == 0 and file_hashes(restored) != expected:
                    raise RuntimeError(f"{case} did not restore the corpus")
                print(case, f"{times[case][-1]:.2f} s", flush=True)
        load.append(os.getloadavg()[0])
    total = size_of(corpus)[0]
    print(f"corpus {total / 2**30:.3f} GiB, archive {result.size:,} bytes; {rounds} rounds;")
    print(f"load average {load[0]:.2f} before, {load[1]:.2f} after; {os.cpu_count()} cores")
    baseline = statistics.median(times["boto3 download | tar -I zstd -x"])
    cpu_baseline = statistics.median(cpu["boto3 download | tar -I zstd -x"])
    print("| case | median seconds | rounds | ratio to boto3 \\| tar | CPU seconds | CPU ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for case, values in times.items():
        median = statistics.median(values)
        rounds_text = ", ".join(f"{value:.1f}" for value in values)
        label = case.replace("|", "\\|")
        used = statistics.median(cpu[case])
        print(
            f"| {label} | {median:.2f} | {rounds_text} | {median / baseline:.2f}"
            f" | {used:.2f} | {used / cpu_baseline:.2f} |"
        )


def _hold(env: dict[str, str], restic_env: dict[str, str]) -> None:
    """Keep moto up with both backups and write the variables the cases need to
    BENCH_OUT/full-env.sh, so that other tools can time the cases as whole processes;
    return when standard input ends (Ctrl-D) or on Ctrl-C."""
    import shlex

    names = [name for name in env if name.startswith("BENCH_S3_")]
    names += ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD"]
    names += ["RESTIC_REPOSITORY", "RESTIC_CACHE_DIR"]
    merged = {**restic_env, **env}
    OUT.mkdir(parents=True, exist_ok=True)
    script = OUT / "full-env.sh"
    script.write_text("".join(f"export {name}={shlex.quote(merged[name])}\n" for name in names))
    script.chmod(0o600)
    print(f"moto is up with both backups; the variables are in {script}.", flush=True)
    print("Time the cases in another shell (see docs/benchmarks.md); Ctrl-D here ends.")
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["frames", "single", "full"])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--gib", type=int, default=4)
    parser.add_argument("--server", choices=["moto", "rclone"], default="moto")
    parser.add_argument("--rclone-buffer-size", default="", help="rclone's --buffer-size")
    parser.add_argument(
        "--format", nargs="+", choices=["tar.zst", "tar.zst.age"], default=["tar.zst"]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", action="store_true", help="full: set up, then wait (see _hold)")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
    elif args.part == "frames":
        frames(build(args.corpus))
    elif args.part == "single":
        single(args.gib, args.server, args.format, args.rclone_buffer_size)
    else:
        full(build(args.corpus), args.rounds, args.hold)


if __name__ == "__main__":
    main()
