"""Issue 21: a full restore runs download, decryption, decompression and tar parsing each
in a thread of its own, stops them all on an error, and shows a percentage through its
estimate."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.age import TamperedError, X25519Identity
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.restore.archives import DecryptionKeys, StoredArchive, open_members
from mackuper.restore.errors import RestoreError
from mackuper.runtime import Runtime
from mackuper.sources.local import LocalSource
from tests.conftest import ApiClient
from tests.integration.engine_support import RecordingHooks
from tests.integration.restore_support import backed_up, local_destination, ok
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration

STAGES = {"restore-download", "restore-decrypt", "restore-decompress", "restore-members"}
IDENTITY = X25519Identity.generate()


def _encrypted_backup(tmp_path: Path) -> tuple[Path, StoredArchive]:
    source = make_small_tree(tmp_path / "source")
    (source / "big.bin").write_bytes(os.urandom(6 << 20))
    destination = LocalDestination(str(tmp_path / "storage"))
    plan = BackupPlan(
        job_id=1,
        job_slug="stages",
        job_name="Stages",
        run_id=1,
        archive_format="tar.zst",
        compression_level=None,
        source=LocalSource([str(source)]),
        destinations={1: destination},
        started_at=datetime.now(UTC),
        encryption=[IDENTITY.recipient()],
    )
    hooks = RecordingHooks()
    run_backup(plan, hooks)
    (key,) = [artifact["key"] for artifact in hooks.artifacts.values()]
    return source, StoredArchive(destination, key, DecryptionKeys([str(IDENTITY)]))


def _restore_threads() -> set[str]:
    return {thread.name for thread in threading.enumerate() if thread.name.startswith("restore-")}


def test_a_full_restore_reads_decrypts_decompresses_and_parses_in_threads_of_their_own(
    tmp_path: Path,
) -> None:
    source, archive = _encrypted_backup(tmp_path)
    seen: set[str] = set()
    hashes: dict[str, str] = {}
    with open_members(archive) as members:
        for member, opener in members:
            seen |= _restore_threads()
            if opener is not None:
                with opener() as handle:
                    hashes[member.name] = hashlib.sha256(handle.read()).hexdigest()
    assert seen == STAGES
    assert _restore_threads() == set()  # every stage ended with the restore
    prefix = str(source).lstrip("/") + "/"
    assert {name.removeprefix(prefix): digest for name, digest in hashes.items()} == file_hashes(
        source
    )


def test_a_damaged_archive_fails_the_restore_and_stops_every_stage(tmp_path: Path) -> None:
    _source, archive = _encrypted_backup(tmp_path)
    stored = tmp_path / "storage" / archive.key
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.chmod(0o644)
    stored.write_bytes(bytes(data))
    with pytest.raises((TamperedError, RestoreError)), open_members(archive) as members:
        for _member, opener in members:
            if opener is not None:
                with opener() as handle:
                    handle.read()
    assert _restore_threads() == set()


def test_a_full_restore_run_is_estimated_at_its_archive_size_and_a_selection_is_not(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source = make_small_tree(tmp_path / "source")
    destination = local_destination(api, tmp_path / "storage")
    backup = backed_up(api, runtime, source, destination["id"], "tar.zst")
    target = {"kind": "local", "path": str(tmp_path / "restored")}
    whole = ok(api, "POST", "/api/restore", {"artifact_id": backup["id"], "target": target})
    estimate = ok(api, "GET", f"/api/ui/runs/{whole['run']['id']}/estimate")
    assert estimate["expected_bytes"] == backup["size"] > 0
    picked = str(source / "docs").lstrip("/")
    body = {"artifact_id": backup["id"], "target": target, "paths": [picked]}
    some = ok(api, "POST", "/api/restore", body)
    assert ok(api, "GET", f"/api/ui/runs/{some['run']['id']}/estimate")["expected_bytes"] is None


def test_large_members_left_unread_or_half_read_are_skipped_and_the_rest_is_intact(
    tmp_path: Path,
) -> None:
    """Files over SMALL_MEMBER come from the member stage in pieces; a reader that
    leaves one (not opened, or opened and read in part) still gets the next members."""
    source, archive = _encrypted_backup(tmp_path)  # big.bin: 6 MiB, over SMALL_MEMBER
    hashes: dict[str, str] = {}
    with open_members(archive) as members:
        for member, opener in members:
            if opener is None:
                continue
            if member.name.endswith("big.bin"):
                with opener() as handle:
                    assert len(handle.read(1000)) == 1000
                continue
            with opener() as handle:
                hashes[member.name] = hashlib.sha256(handle.read()).hexdigest()
    prefix = str(source).lstrip("/") + "/"
    expected = {name: digest for name, digest in file_hashes(source).items() if name != "big.bin"}
    assert {name.removeprefix(prefix): digest for name, digest in hashes.items()} == expected


def test_an_archive_cut_inside_a_member_is_a_restore_error(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    whole = io.BytesIO()
    with tarfile.open(fileobj=whole, mode="w") as tar:
        for name, size in (("small.txt", 5000), ("large.bin", 3 << 20)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(os.urandom(size)))
    cut = whole.getvalue()[: 512 + 5120 + 512 + (1 << 20)]  # halfway through large.bin
    (storage / "cut.tar").write_bytes(cut)
    archive = StoredArchive(LocalDestination(str(storage)), "cut.tar")
    with pytest.raises(RestoreError, match="truncated"), open_members(archive) as members:
        for _member, opener in members:
            if opener is not None:
                with opener() as handle:
                    handle.read()
    assert _restore_threads() == set()
