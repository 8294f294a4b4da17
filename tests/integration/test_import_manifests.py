"""Catalog import judges each manifest on its own (hardening item 4).

Two real backups sit in a job's folder beside manifests that are broken, too
large, dated in the future, in the wrong folder, or that disagree with their
archive. Import brings back the two real ones, lists every other one with its
reason, and answers 200; retention afterwards deletes nothing it should keep.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mackuper.destinations.local import LocalDestination
from mackuper.models import Artifact, Job, Run
from mackuper.models import Destination as DestinationRow
from mackuper.restore import catalog
from mackuper.runs.retention import apply_retention
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.engine_support import RecordingHooks, backup
from tests.integration.restore_support import finished_run, local_destination, ok, restore
from tests.integration.write_lock import another_writer
from tests.trees import b3sum, sha256_file

pytestmark = pytest.mark.integration

FIRST = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
SECOND = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
FOLDER = "engine-test/2026/11"


def _plant(root: Path, key: str, manifest: bytes | dict[str, Any], archive: bytes = b"x") -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(archive)
    document = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    (root / f"{key}.manifest.json").write_bytes(document)


def _two_backups(tmp_path: Path) -> Path:
    """Two real backups of job engine-test (FIRST: state.txt "first", SECOND: "second")
    in a fresh folder; that folder."""
    root = tmp_path / "backups"
    source = tmp_path / "source"
    source.mkdir()
    for when, text in ((FIRST, "first\n"), (SECOND, "second\n")):
        (source / "state.txt").write_text(text)
        backup(
            source, {1: LocalDestination(str(root))}, "tar.gz", RecordingHooks(), started_at=when
        )
    return root


def _like(good: dict[str, Any], started: str, **changes: Any) -> dict[str, Any]:
    return {**good, "started_at": started, "finished_at": started, **changes}


def test_import_takes_the_good_manifests_and_lists_every_bad_one(
    tmp_path: Path, runtime: Runtime, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _two_backups(tmp_path)
    good = json.loads((root / FOLDER / "backup_20261130_100000.tar.gz.manifest.json").read_text())
    one_byte = {**good, "archive": {"size": 1, "sha256": "0" * 64}}
    bad = {
        f"{FOLDER}/backup_20261101_000000.tar.gz": b"{not json",
        f"{FOLDER}/backup_20261102_000000.tar.gz": _like(
            one_byte, "2026-11-02T00:00:00+00:00", files=None, file_count="abc"
        ),
        f"{FOLDER}/backup_20261103_000000.tar.gz": b'{"mackuper_manifest": 1, "file_count": 1e400}',
        f"{FOLDER}/backup_20261104_000000.tar.gz": b"[" * 100_000 + b"]" * 100_000,
        f"{FOLDER}/backup_20261105_000000.tar.gz": b"x" * (2 * 1024 * 1024),
        "engine-test/2030/01/backup_20300101_000000.tar.gz": _like(
            one_byte, "2030-01-01T00:00:00+00:00"
        ),
        "other-job/2026/11/backup_20261106_000000.tar.gz": _like(
            one_byte, "2026-11-06T00:00:00+00:00"
        ),
        f"{FOLDER}/backup_20261107_000000.tar.gz": _like(one_byte, "2026-11-07T09:00:00+00:00"),
        f"{FOLDER}/backup_20261108_000000.tar.gz": _like(
            {**good, "archive": {"size": 999, "sha256": "0" * 64}}, "2026-11-08T00:00:00+00:00"
        ),
        f"{FOLDER}/backup_20261109_000000.tar.gz": _like(
            one_byte, "2026-11-09T00:00:00+00:00", job={"slug": "engine-test", "name": "\udcff"}
        ),
    }
    for key, manifest in bad.items():
        document = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        _plant(root, key, document)
    monkeypatch.setattr(catalog, "MANIFEST_LIMIT", 1024 * 1024)

    destination = local_destination(api, root)
    report = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]

    assert report["imported"] == 2, report
    assert report["manifests"] == 12 and report["refused"] == len(bad)
    problems = "\n".join(report["problems"])
    for key, reason in {
        "backup_20261101_000000": "not valid JSON",
        "backup_20261102_000000": "file_count",
        "backup_20261103_000000": "not a valid Mackuper manifest",
        "backup_20261104_000000": "not valid JSON",
        "backup_20261105_000000": "refused unread",
        "backup_20300101_000000": "dated in the future",
        "backup_20261106_000000": "lies outside engine-test/2026/11/",
        "backup_20261107_000000": "start time is not the one in its archive's name",
        "backup_20261108_000000": "declares 999 bytes but the archive has 1",
        "backup_20261109_000000": "job.name",
    }.items():
        line = next(line for line in report["problems"] if key in line)
        assert reason in line, (key, line)
    assert "Traceback" not in problems
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 2
        assert session.scalar(select(func.count()).select_from(Artifact)) == 2
        (job,) = session.scalars(select(Job)).all()
        assert job.slug == "engine-test"

    # The two real ones restore, each with its own data.
    backups = sorted(ok(api, "GET", "/api/backups")["backups"], key=lambda item: item["key"])
    for item, text in zip(backups, ("first\n", "second\n"), strict=True):
        target = tmp_path / f"restored-{text.strip()}"
        run = restore(api, runtime, item["id"], {"kind": "local", "path": str(target)})
        assert run["status"] == "success", run["error"]
        (restored,) = target.rglob("state.txt")
        assert restored.read_text() == text

    # Retention with room for two keeps both real backups: none of the planted,
    # newer-dated manifests took a slot.
    with runtime.sessions.begin() as session:
        session.scalars(select(Job)).one().retention = {"keep_last": 2}
    deleted = apply_retention(runtime.sessions, runtime.secrets, job.id, datetime.now(UTC))
    assert deleted == 0
    for day in ("29", "30"):
        assert (root / FOLDER / f"backup_202611{day}_100000.tar.gz").is_file()


def test_manifests_are_read_before_the_catalog_is_written(tmp_path: Path, runtime: Runtime) -> None:
    """Reading manifests from storage (slow on a remote) holds no database lock: on
    SQLite a write transaction held across those reads kept every worker's progress
    and claims waiting on the destination. Each read here checks that another
    connection can take the write lock at once (busy timeout 0)."""
    root = _two_backups(tmp_path)
    writable_during_reads: list[str] = []
    with runtime.sessions.begin() as session:
        row = DestinationRow(name="Disk", kind="local", config={"path": str(root)})
        session.add(row)
    with another_writer(runtime) as write_now:

        class Watched(LocalDestination):
            def get_bytes(self, key: str) -> bytes:
                write_now()  # raises when the import holds the write lock
                writable_during_reads.append(key.rsplit("/", 1)[-1])
                return super().get_bytes(key)

        with runtime.sessions() as session:
            report = catalog.import_backups(
                session, session.merge(row), Watched(str(root)), datetime.now(UTC)
            )

    assert report.imported == 2, report.problems
    assert writable_during_reads == [
        "backup_20261129_100000.tar.gz.manifest.json",
        "backup_20261130_100000.tar.gz.manifest.json",
    ]
    with runtime.sessions() as session:
        stored = session.scalars(select(Run.files_done).order_by(Run.started_at)).all()
    assert stored == [2, 2]  # each manifest lists the folder and state.txt: counted, not kept


def test_an_imported_backup_keeps_the_one_hash_its_manifest_names_and_verifies_by_it(
    tmp_path: Path, runtime: Runtime, api: ApiClient
) -> None:
    """A manifest written before 2026-12-02 names its archive's SHA-256, one written since
    its BLAKE3: each comes back with that hash and verifies by it. A (hand-made) manifest
    naming both keeps the BLAKE3 only, the one a verification compares, so no unchecked
    SHA-256 is shown beside it."""
    root = _two_backups(tmp_path)
    older, newer = (root / FOLDER / f"backup_202611{day}_100000.tar.gz" for day in ("29", "30"))
    for archive, section in (
        (older, {"size": older.stat().st_size, "sha256": sha256_file(older)}),
        (newer, {"size": newer.stat().st_size, "blake3": b3sum(newer), "sha256": "0" * 64}),
    ):
        path = Path(f"{archive}.manifest.json")
        path.write_text(json.dumps({**json.loads(path.read_text()), "archive": section}))

    destination = local_destination(api, root)
    report = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]

    assert report["imported"] == 2, report
    backups = sorted(ok(api, "GET", "/api/backups")["backups"], key=lambda item: item["key"])
    assert [(item["sha256"], item["blake3"]) for item in backups] == [
        (sha256_file(older), None),
        (None, b3sum(newer)),
    ]
    for item in backups:
        run = ok(api, "POST", "/api/verify", {"artifact_id": item["id"], "deep": True})["run"]
        verified = finished_run(api, runtime, run)
        assert verified["status"] == "success", verified["error"]
        assert (verified["sha256"], verified["blake3"]) == (item["sha256"], item["blake3"])
