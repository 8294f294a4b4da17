"""A run's memory does not grow with its file count: the file list is spooled
(pipeline/filelist.py), and so are the manifest and, encrypted, its sealed part.

Measured with tracemalloc (what Python allocates) over run_backup, for a tree of few
files and one of 8 (plain) or 16 (encrypted) times as many, with the spools moved to
disk early so that a test-sized run shows what a run of millions of files does. The
entries held in dicts cost ~550 bytes a file and the manifest's JSON ~200 more
(docs/benchmarks.md, "Memory per file"): ~0.7 KiB a file before. The pipeline's
hand-off pieces move an encrypted run's peak by up to ~2 MiB from one run to the next
(one stage more; plain runs measured within 0.1 MiB), hence its larger tree and bound.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tempfile
import tracemalloc
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
import pytest

from mackuper.core.anomaly import Fingerprint
from mackuper.destinations.local import LocalDestination
from mackuper.pipeline import chainstate, filelist, run
from mackuper.pipeline.age import X25519Identity
from mackuper.pipeline.chainstate import read_state, state_of, write_state
from mackuper.pipeline.errors import PipelineError
from mackuper.pipeline.filelist import FileList
from mackuper.pipeline.incremental import ChainPlan
from mackuper.pipeline.run import BackupPlan, BackupResult, run_backup
from mackuper.sources.local import LocalSource
from tests.integration.engine_support import RecordingHooks
from tests.trees import b3sum

pytestmark = pytest.mark.integration

FEW = 1_500
NOT_UTF8 = b"caf\xe9-latin1.txt"
"""A name that is not UTF-8 on disk: it reaches the manifest with a surrogate."""


def _tree(root: Path, count: int) -> Path:
    for index in range(count):
        folder = root / f"d{index // 500:03d}"
        if index % 500 == 0:
            folder.mkdir(parents=True)
        (folder / f"file-{index:06d}.txt").write_bytes(b"%d\n" % index)
    with open(os.path.join(os.fsencode(root), NOT_UTF8), "wb") as odd:
        odd.write(b"latin-1 named\n")
    return root


def _plan(source: Path, target: Path, identity: X25519Identity | None = None) -> BackupPlan:
    return BackupPlan(
        job_id=1,
        job_slug="many",
        job_name="Many files",
        run_id=1,
        archive_format="tar",
        compression_level=None,
        source=LocalSource([str(source)]),
        destinations={1: LocalDestination(str(target))},
        started_at=datetime.now(UTC),
        encryption=[identity.recipient()] if identity is not None else None,
    )


def _backup(
    source: Path, target: Path, identity: X25519Identity | None
) -> tuple[BackupResult, int, str]:
    """The run, its tracemalloc peak above where it started, and its archive key."""
    hooks = RecordingHooks()
    plan = _plan(source, target, identity)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = run_backup(plan, hooks)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    (artifact,) = hooks.artifacts.values()
    return result, peak, str(artifact["key"])


def _files(manifest_path: Path, identity: X25519Identity | None, folder: Path) -> list[Any]:
    manifest = json.loads(manifest_path.read_bytes())
    if identity is None:
        files: list[Any] = manifest["files"]
        return files
    # The sealed part opens with the standard tool, from the manifest as stored.
    key = folder / "key.txt"
    key.write_text(str(identity) + "\n")
    opened = subprocess.run(
        ["age", "-d", "-i", str(key)],
        input=manifest["sealed_age"].encode(),
        capture_output=True,
        check=True,
    )
    assert "files" not in manifest
    sealed: list[Any] = json.loads(opened.stdout)["files"]
    assert manifest["file_count"] == len(sealed)
    return sealed


@pytest.mark.parametrize(
    ("encrypted", "many", "bound"),
    [(False, 12_000, 2 << 20), (True, 24_000, 4 << 20)],
    ids=["plain", "encrypted"],
)
def test_a_run_of_many_times_the_files_peaks_no_higher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypted: bool, many: int, bound: int
) -> None:
    monkeypatch.setattr(filelist, "IN_MEMORY", 256 << 10)
    monkeypatch.setattr(run, "IN_MEMORY", 256 << 10)
    identity = X25519Identity.generate() if encrypted else None
    peaks = {}
    for count in (FEW, many):
        source = _tree(tmp_path / f"source-{count}", count)
        # Both runs fill the pipeline's hand-off pieces (a few MiB, whatever the count).
        (source / "big.bin").write_bytes(os.urandom(16 << 20))
        target = tmp_path / f"backups-{count}"
        result, peaks[count], key = _backup(source, target, identity)
        with result.entries:
            assert result.files == len(result.entries) == count + count // 500 + 3
            assert Fingerprint.of(result.entries, result.bytes_read, result.size).files == count + 2
            listed = list(result.entries)
        archive = target / key
        if encrypted:
            plain = tmp_path / f"archive-{count}.tar"
            (tmp_path / "key.txt").write_text(str(identity) + "\n")
            subprocess.run(
                ["age", "-d", "-i", str(tmp_path / "key.txt"), "-o", str(plain), str(archive)],
                check=True,
            )
            archive = plain
        out = tmp_path / f"out-{count}"
        out.mkdir()
        subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
        files = _files(target / (key + ".manifest.json"), identity, tmp_path)
        assert files == listed
        hashed = {item["path"]: item["blake3"] for item in files if item["type"] == "file"}
        assert len(hashed) == count + 2
        for path, digest in hashed.items():
            on_disk = out / os.fsencode(path).decode("utf-8", "surrogateescape")
            assert blake3.blake3(on_disk.read_bytes()).hexdigest() == digest
    # Before the spools: ~0.7 KiB more a file (entries and their JSON): 10,500 files more
    # added ~8 MiB, 22,500 ~16 MiB.
    assert peaks[many] < peaks[FEW] + bound, peaks


def test_a_temporary_directory_that_cannot_hold_the_list_fails_the_run_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list is spooled before the archive is committed: the run fails with a message
    naming the directory, and nothing is published."""
    monkeypatch.setattr(filelist, "IN_MEMORY", 4 << 10)  # 203 entries: ~40 KiB
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-directory"))
    source = _tree(tmp_path / "source", 200)
    hooks = RecordingHooks()
    plan = _plan(source, tmp_path / "backups")

    with pytest.raises(PipelineError, match="file list could not be kept in a temporary file"):
        run_backup(plan, hooks)

    assert [artifact["state"] for artifact in hooks.artifacts.values()] == ["deleted"]
    assert [path for path in (tmp_path / "backups").rglob("*") if path.is_file()] == []


def test_a_manifest_that_cannot_be_spooled_leaves_the_archive_stored_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest is made after the archive is committed: as when a destination
    refuses it, the run warns and the archive stays (its catalog row has its hash)."""
    monkeypatch.setattr(run, "IN_MEMORY", 1 << 10)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-directory"))
    source = _tree(tmp_path / "source", 200)
    hooks = RecordingHooks()

    result = run_backup(_plan(source, tmp_path / "backups"), hooks)
    with result.entries:
        listed_entries = len(list(result.entries))

    assert any("manifest could not be written anywhere" in problem for problem in result.problems)
    (artifact,) = hooks.artifacts.values()
    assert artifact["state"] == "stored"
    archive = tmp_path / "backups" / str(artifact["key"])
    assert ("blake3", b3sum(archive)) == result.archive_hash
    listed = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, check=True)
    assert len(listed.stdout.splitlines()) == listed_entries == 203
    assert not (archive.parent / (archive.name + ".manifest.json")).exists()


def test_an_incremental_point_whose_list_cannot_be_spooled_warns_and_keeps_its_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An incremental's own list is made after the commit (ChainPlan.listed): a temporary
    directory that cannot take it is a warning, as for the manifest itself."""
    source = _tree(tmp_path / "source", 200)
    full = run_backup(_plan(source, tmp_path / "backups"), RecordingHooks())
    with full.entries:
        previous = state_of(full.entries, full.archive_name)
    (source / "d000" / "file-000007.txt").write_bytes(b"changed\n")
    monkeypatch.setattr(filelist, "IN_MEMORY", 1 << 10)
    monkeypatch.setattr(filelist, "ITEMS_PER_BATCH", 8)
    plan = _plan(source, tmp_path / "backups")
    plan.started_at = datetime(2030, 1, 1, tzinfo=UTC)
    plan.chain = ChainPlan(level=1, earlier=(full.archive_name,), previous=previous)
    real_listed = ChainPlan.listed

    def listed_with_no_temporary_directory(chain: ChainPlan, files: FileList) -> dict[str, Any]:
        files.flush()  # the run's own list is on disk already
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-directory"))
        return real_listed(chain, files)

    monkeypatch.setattr(ChainPlan, "listed", listed_with_no_temporary_directory)
    hooks = RecordingHooks()

    result = run_backup(plan, hooks)
    result.entries.close()

    assert any("manifest could not be written anywhere" in problem for problem in result.problems)
    (artifact,) = hooks.artifacts.values()
    assert artifact["state"] == "stored"
    archive = tmp_path / "backups" / str(artifact["key"])
    assert ("blake3", b3sum(archive)) == result.archive_hash
    extracted = subprocess.run(
        ["tar", "-xOf", str(archive), str(source / "d000" / "file-000007.txt").lstrip("/")],
        capture_output=True,
        check=True,
    )
    assert extracted.stdout == b"changed\n"


def test_an_incremental_run_against_many_times_the_files_peaks_no_higher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous point is read from its stored state into SQLite's temporary database
    (pipeline/chainstate.py), not into dicts, and only hard-linked names are remembered
    as written: an incremental run that compares and rewrites every file of 24,000
    peaks within 2 MiB of one of 1,500 (measured: 0.07 MiB apart; with the points in
    dicts ~28 MiB apart, and remembering every written name ~5 MiB)."""
    monkeypatch.setattr(filelist, "IN_MEMORY", 256 << 10)
    monkeypatch.setattr(run, "IN_MEMORY", 256 << 10)
    monkeypatch.setattr(chainstate, "IN_MEMORY", 1_000)
    many = 24_000
    peaks = {}
    for count in (FEW, many):
        source = _tree(tmp_path / f"source-{count}", count)
        target = tmp_path / f"backups-{count}"
        full = run_backup(_plan(source, target), RecordingHooks())
        stored = io.BytesIO()
        with full.entries:
            write_state(full.entries, full.archive_name, stored)
        state = zlib.compress(stored.getvalue())
        gone = [source / "d000" / f"file-{index:06d}.txt" for index in (3, 4)]
        for path in gone:
            path.unlink()
        for path in source.rglob("*.txt"):
            os.utime(path, ns=(2_000_000_000 * 10**9, 2_000_000_000 * 10**9))
        hooks = RecordingHooks()
        plan = _plan(source, target)
        plan.started_at = datetime(2030, 1, 1, tzinfo=UTC)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            plan.chain = ChainPlan(
                level=1, earlier=(full.archive_name,), previous=read_state(state)
            )
            assert plan.chain.previous.on_disk
            result = run_backup(plan, hooks)
            plan.chain.close()
            peaks[count] = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        result.entries.close()
        (key,) = [str(item["key"]) for item in hooks.artifacts.values()]
        manifest = json.loads((target / (key + ".manifest.json")).read_text())
        assert manifest["chain"]["level"] == 1
        assert sorted(manifest["removed"]) == sorted(str(path).lstrip("/") for path in gone)
        hashed = {item["path"]: item["blake3"] for item in manifest["files"] if item.get("blake3")}
        assert len(hashed) == count - 2 + 1  # every file rewritten, the latin-1 one too
        out = tmp_path / f"out-{count}"
        out.mkdir()
        subprocess.run(["tar", "-xf", str(target / key), "-C", str(out)], check=True)
        for path, digest in hashed.items():
            on_disk = out / os.fsencode(path).decode("utf-8", "surrogateescape")
            assert blake3.blake3(on_disk.read_bytes()).hexdigest() == digest
    assert peaks[many] < peaks[FEW] + (2 << 20), peaks
