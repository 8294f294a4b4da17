"""Incremental chains (issue 17, Done-when 3) beside restic and borg, in one run.

    .venv/bin/python -m bench.incremental [--skip-borg]

On a hard-linked copy of the 1 GiB corpus of bench/corpus.py (files about to change
are copied first, so the corpus itself never changes), with tar.zst to a local
directory:

1. a full backup, then a second backup of the unchanged corpus: seconds and bytes
   stored (archive and manifest), beside restic's and borg's second backup; the note
   gives the manifest's size, compressed with `zstd -3`, and the size the manifest
   would have listing every path of the point (as incremental manifests did before
   they listed changes only), plain and compressed;
2. appending 4 KiB to 1% of the files (every 100th): the stored increment (archive and
   manifest) beside those files compressed with `zstd -3` (as a tar of them), and
   beside restic's and borg's repository growth;
3. four more such points make a seven-point chain; restoring its newest point
   (Mackuper reading the archives of the chain) beside restoring a full backup of the
   same tree.

Prints a Markdown table and the load average before and after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.corpus import DEFAULT_TARGET, build

MIB = 1024 * 1024
APPENDED = 4096


@dataclass
class Row:
    case: str
    seconds: float | None
    stored: int | None
    note: str = ""


class _Hooks:
    def __init__(self) -> None:
        self.next_id = 0

    def log(self, level: str, message: str) -> None:
        if level not in {"info"}:
            print(level, message, file=sys.stderr)

    def progress(self, **values: Any) -> None:
        return None

    def artifact_opened(self, destination_id: int, key: str) -> int:
        self.next_id += 1
        return self.next_id

    def artifact_upload_started(self, artifact_id: int, upload_id: str) -> None:
        return None

    def artifact_stored(self, artifact_id: int, size: int, archive_hash: tuple[str, str]) -> None:
        return None

    def artifact_discarded(self, artifact_id: int) -> None:
        return None


def _backup(source: Path, storage: Path, chain: Any, second: int) -> tuple[Any, float, Path]:
    from mackuper.destinations.local import LocalDestination
    from mackuper.pipeline.run import BackupPlan, run_backup
    from mackuper.sources.local import LocalSource

    plan = BackupPlan(
        job_id=1,
        job_slug="bench",
        job_name="Bench",
        run_id=second + 1,
        archive_format="tar.zst",
        compression_level=None,
        source=LocalSource([str(source)]),
        destinations={1: LocalDestination(str(storage))},
        started_at=datetime(2026, 12, 1, 2, 0, tzinfo=UTC) + timedelta(seconds=second),
        chain=chain,
    )
    started = time.perf_counter()
    result = run_backup(plan, _Hooks())
    seconds = time.perf_counter() - started
    return result, seconds, storage / "bench" / "2026" / "12" / result.archive_name


def _next(result: Any, previous_chain: Any) -> Any:
    from mackuper.pipeline.chainstate import state_of
    from mackuper.pipeline.incremental import ChainPlan

    earlier = (*(previous_chain.earlier if previous_chain else ()), result.archive_name)
    return ChainPlan(
        level=len(earlier),
        earlier=earlier,
        previous=state_of(result.entries, result.archive_name),
    )


def _restore(point: Path, storage: Path, target: Path) -> float:
    from mackuper.destinations.local import LocalDestination
    from mackuper.restore.archives import StoredArchive, open_members
    from mackuper.restore.chain import is_chain_point, open_parts, plan_parts, point_manifest
    from mackuper.restore.extract import ExtractOptions, Extractor
    from mackuper.restore.manifest import read_manifest
    from mackuper.restore.targets import LocalTarget

    started = time.perf_counter()
    archive = StoredArchive(LocalDestination(str(storage)), str(point.relative_to(storage)))
    manifest = point_manifest(archive, read_manifest(archive.destination, archive.key)) or {}
    local = LocalTarget(str(target))
    try:
        extractor = Extractor(local, ExtractOptions(), _Hooks())
        if is_chain_point(manifest):
            opened = open_parts(plan_parts(archive, manifest, lambda _path: True))
        else:
            opened = open_members(archive)
        with opened as members:
            report = extractor.run(members)
    finally:
        local.close()
    if report.failed or report.refused:
        raise RuntimeError(f"the restore failed: {report.as_dict()}")
    return time.perf_counter() - started


def _changed_files(source: Path, step: int) -> list[Path]:
    """Every 100th file (1%), shifted by `step`, each appended 4 KiB (copied first so
    the corpus behind the hard links never changes)."""
    files = sorted(path for path in source.rglob("*") if path.is_file())
    chosen = files[step % 100 :: 100]
    for path in chosen:
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data + (f"appended at step {step}\n" * 200).encode()[:APPENDED])
    return chosen


def _zstd_size(files: list[Path]) -> int:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in files:
            archive.add(path, arcname=str(path).lstrip("/"))
    compressed = subprocess.run(
        ["zstd", "-3", "-c", "-q"], input=buffer.getvalue(), capture_output=True, check=True
    ).stdout
    return len(compressed)


def _zstd(data: bytes) -> int:
    done = subprocess.run(["zstd", "-3", "-c", "-q"], input=data, capture_output=True, check=True)
    return len(done.stdout)


def _manifest_note(storage: Path, archive: Path) -> tuple[int, str]:
    """The manifest's size, and a note comparing it with the alternatives (issue 17)."""
    from mackuper.destinations.local import LocalDestination
    from mackuper.restore.archives import StoredArchive
    from mackuper.restore.chain import point_manifest
    from mackuper.restore.manifest import read_manifest

    manifest_path = archive.parent / (archive.name + ".manifest.json")
    document = manifest_path.read_bytes()
    point = StoredArchive(LocalDestination(str(storage)), str(archive.relative_to(storage)))
    whole = point_manifest(point, read_manifest(point.destination, point.key)) or {}
    listing_all = json.dumps(whole, separators=(",", ":")).encode()
    return len(document), (
        f"manifest {len(document) / 1024:.1f} KiB ({_zstd(document) / 1024:.1f} KiB with"
        f" zstd -3); listing every path it would be {len(listing_all) / MIB:.2f} MiB"
        f" ({_zstd(listing_all) / MIB:.2f} MiB with zstd -3)"
    )


def _tree_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def _tool(name: str, base: list[str], repository: Path, label: str, source: Path) -> list[str]:
    """restic's or borg's backup command for one snapshot of `source`."""
    if name == "borg":
        return [*base, f"{repository}::{label}", str(source)]
    return [*base, str(source)]


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)  # noqa: S603
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-borg", action="store_true")
    parser.add_argument("--skip-restic", action="store_true")
    args = parser.parse_args()
    corpus = build(DEFAULT_TARGET)
    load_before = os.getloadavg()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as work_dir:
        work = Path(work_dir)
        source = work / "source"
        subprocess.run(["cp", "-al", str(corpus), str(source)], check=True)
        storage = work / "storage"

        from mackuper.pipeline.incremental import ChainPlan

        full, seconds, full_archive = _backup(source, storage, ChainPlan(level=0), 0)
        rows.append(Row("Mackuper full (tar.zst)", seconds, full.size))
        chain = _next(full, None)
        second, seconds, archive = _backup(source, storage, chain, 1)
        manifest_size, note = _manifest_note(storage, archive)
        rows.append(
            Row("Mackuper 2nd backup, unchanged", seconds, second.size + manifest_size, note)
        )
        env = {**os.environ, "RESTIC_PASSWORD": "bench", "BORG_PASSPHRASE": "bench"}
        env["BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK"] = "yes"
        restic_repo, borg_repo = work / "restic", work / "borg"
        tools = []
        if not args.skip_restic:
            subprocess.run(["restic", "-q", "-r", str(restic_repo), "init"], env=env, check=True)
            tools.append(
                ("restic", ["restic", "-q", "-r", str(restic_repo), "backup"], restic_repo)
            )
        if not args.skip_borg and shutil.which("borg"):
            subprocess.run(["borg", "init", "-e", "repokey", str(borg_repo)], env=env, check=True)
            tools.append(("borg", ["borg", "create", "-C", "zstd,3"], borg_repo))
        for name, command, repository in tools:
            _timed(_tool(name, command, repository, "one", source), env)
            before = _tree_size(repository)
            seconds = _timed(_tool(name, command, repository, "two", source), env)
            grown = _tree_size(repository) - before
            rows.append(Row(f"{name} 2nd backup, unchanged", seconds, grown))

        changed = _changed_files(source, 0)
        compressed = _zstd_size(changed)
        chain = _next(second, chain)
        third, seconds, archive = _backup(source, storage, chain, 2)
        manifest_size, _note = _manifest_note(storage, archive)
        stored = third.size + manifest_size
        rows.append(
            Row(
                f"Mackuper after appending to 1% ({len(changed)} files)",
                seconds,
                stored,
                f"{stored / compressed:.2f}x their zstd -3 size ({compressed} bytes);"
                f" archive {third.size / compressed:.2f}x, manifest {manifest_size / 1024:.0f} KiB",
            )
        )
        for name, command, repository in tools:
            before = _tree_size(repository)
            seconds = _timed(_tool(name, command, repository, "three", source), env)
            grown = _tree_size(repository) - before
            rows.append(Row(f"{name} after appending to 1%", seconds, grown))

        result, point = third, archive
        for step in range(3, 7):
            _changed_files(source, step)
            chain = _next(result, chain)
            result, _seconds, point = _backup(source, storage, chain, step)
        restored_point = _restore(point, storage, work / "restore-point")
        final_full, _seconds, final_archive = _backup(source, work / "full-storage", None, 10)
        restored_full = _restore(final_archive, work / "full-storage", work / "restore-full")
        rows.append(Row("Mackuper restore of a full", restored_full, None))
        rows.append(
            Row(
                "Mackuper restore of the newest of 7 points",
                restored_point,
                None,
                f"{restored_point / restored_full:.2f}x the full's restore",
            )
        )
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    print("| case | seconds | stored | note |")
    print("|---|---:|---:|---|")
    for row in rows:
        seconds = f"{row.seconds:.1f}" if row.seconds is not None else ""
        stored = f"{row.stored / MIB:.3f} MiB" if row.stored is not None else ""
        print(f"| {row.case} | {seconds} | {stored} | {row.note} |")


if __name__ == "__main__":
    main()
