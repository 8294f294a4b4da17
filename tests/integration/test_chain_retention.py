"""Incremental chains around the catalog (issue 17): catalog import rebuilds chains from
their manifests, the retention preview shows them, retention keeps every archive a
kept point needs (and GNU tar alone still restores what is left), and verification
checks every archive of a point's chain, naming a broken one.

The chains are real GNU tar incremental archives with chain manifests written by hand
(tests/integration/chain_support.py), at a local folder and at S3 (moto).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mackuper.config import load_settings
from mackuper.core.naming import manifest_key
from mackuper.destinations.base import Destination
from mackuper.models import ChainPoint, Job, Run, RunKind, RunLog, RunStatus
from mackuper.models import Destination as DestinationRow
from mackuper.restore.stored import build_destination
from mackuper.runs.retention import apply_retention
from mackuper.runtime import Runtime, open_runtime
from mackuper.web import create_app
from tests.conftest import ADMIN_PASSWORD, ApiClient
from tests.harness import s3_destination_payload
from tests.integration.chain_support import HandChain, restore_with_tar
from tests.integration.restore_support import finished_run, ok, run_log
from tests.integration.test_object_lock import (
    back_up,
    lock_at_server,
    lock_destination,
    locked_bucket,
    near,
)
from tests.servers.s3 import S3Bucket, S3Server, remove_bucket, unique_bucket_name
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Storage:
    row_id: int
    destination: Destination

    def keys(self) -> set[str]:
        return {item.key for item in self.destination.list(self.destination.prefix)}


@pytest.fixture(params=["local", "s3"])
def storage(
    request: pytest.FixtureRequest, tmp_path: Path, api: ApiClient, runtime: Runtime
) -> Iterator[Storage]:
    """A local folder, or a fresh bucket at moto's S3 server."""
    bucket = None
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("moto_s3")
        server.start()
        bucket = S3Bucket(server, server.make_bucket(unique_bucket_name()))
        form = s3_destination_payload(server, bucket.name)
    else:
        form = {"name": "Disk", "kind": "local", "path": str(tmp_path / "storage")}
    row_id = ok(api, "POST", "/api/destinations", form)["destination"]["id"]
    with runtime.sessions() as session:
        destination = build_destination(runtime, session.get_one(DestinationRow, row_id))
    yield Storage(row_id, destination)
    if bucket is not None:
        remove_bucket(bucket.server, bucket.name)


def _chain(tmp_path: Path, storage: Storage) -> HandChain:
    source = make_small_tree(tmp_path / "source")
    work = tmp_path / "work"
    work.mkdir()
    return HandChain(storage.destination, work, source, "documents", "Documents")


def _imported(api: ApiClient, destination_id: int) -> dict[str, Any]:
    body = {"destination_id": destination_id}
    report: dict[str, Any] = ok(api, "POST", "/api/import", body)["report"]
    return report


def _backups(api: ApiClient) -> dict[str, dict[str, Any]]:
    """Archive name -> the backup as /api/backups lists it."""
    return {
        item["key"].rsplit("/", 1)[-1]: item for item in ok(api, "GET", "/api/backups")["backups"]
    }


def _verify(api: ApiClient, runtime: Runtime, artifact_id: int) -> dict[str, Any]:
    run = ok(api, "POST", "/api/verify", {"artifact_id": artifact_id, "deep": True})["run"]
    return finished_run(api, runtime, run)


def test_import_rebuilds_chains_and_retention_keeps_what_kept_points_need(
    tmp_path: Path, api: ApiClient, runtime: Runtime, storage: Storage
) -> None:
    chain = _chain(tmp_path, storage)
    source = chain.source
    a0 = chain.store(NOW - timedelta(hours=6), full=True)
    (source / "docs" / "readme.txt").write_text("changed once\n")
    a1 = chain.store(NOW - timedelta(hours=5))
    (source / "added.txt").write_text("new in a2\n")
    a2 = chain.store(NOW - timedelta(hours=4))
    b0 = chain.store(NOW - timedelta(hours=3), full=True)
    (source / "big.bin").unlink()
    shutil.rmtree(source / "docs" / "deep")
    (source / "docs" / "deep").write_text("a file where a folder was\n")
    (source / "added.txt").write_text("changed in b1\n")
    b1 = chain.store(NOW - timedelta(hours=2))

    report = _imported(api, storage.row_id)
    assert report["problems"] == []
    assert (report["imported"], report["chain_points"], report["broken_chains"]) == (5, 5, [])
    backups = _backups(api)
    run_of = {name: backups[name]["run_id"] for name in backups}
    with runtime.sessions() as session:
        points = {point.archive_name: point for point in session.scalars(select(ChainPoint))}
        job_id = session.scalars(select(Job.id)).one()
    assert points[a2.name].needs == [run_of[a0.name], run_of[a1.name], run_of[a2.name]]
    assert (points[a2.name].level, points[a2.name].full_run_id) == (2, run_of[a0.name])
    assert points[a2.name].previous_run_id == run_of[a1.name]
    assert points[b0.name].needs == [run_of[b0.name]]

    # The preview counts points: keep the last one, and the full it builds on with it.
    preview = ok(api, "GET", f"/api/jobs/{job_id}/retention/preview?keep_last=1")
    decisions = {item["run_id"]: item for item in preview["backups"]}
    newest, full = decisions[run_of[b1.name]], decisions[run_of[b0.name]]
    assert newest["keep"] and not newest["kept_for_chain"]
    assert newest["chain"] == {
        "level": 1,
        "full_run_id": run_of[b0.name],
        "needs": [run_of[b0.name], run_of[b1.name]],
    }
    assert full["keep"] and full["kept_for_chain"]
    assert full["needed_by"] == [run_of[b1.name]]
    assert full["reasons"] == [f"needed by run {run_of[b1.name]}"]
    assert {run_id for run_id, item in decisions.items() if not item["keep"]} == {
        run_of[a0.name],
        run_of[a1.name],
        run_of[a2.name],
    }
    # The last three points: a2 is third, so a1 and a0 stay with it.
    two = ok(api, "GET", f"/api/jobs/{job_id}/retention/preview?keep_last=3")
    kept = {item["run_id"] for item in two["backups"] if item["keep"]}
    assert kept == set(run_of.values())  # a2 is kept, so a1 and a0 are too
    chained = {item["run_id"] for item in two["backups"] if item["kept_for_chain"]}
    assert chained == {run_of[a0.name], run_of[a1.name]}

    with runtime.sessions.begin() as session:
        session.get_one(Job, job_id).retention = {"keep_last": 1}
    assert apply_retention(runtime.sessions, runtime.secrets, job_id, datetime.now(UTC)) == 3
    left = storage.keys()
    assert left == {b0.key, b1.key, b0.key + ".manifest.json", b1.key + ".manifest.json"}

    # What retention left is a whole chain: GNU tar alone restores the newest point,
    # deleted files, the folder turned file and all.
    target = tmp_path / "restored"
    restore_with_tar(storage.destination, [b0.key, b1.key], target)
    assert file_hashes(target / str(source).lstrip("/")) == b1.tree
    assert not (target / str(source).lstrip("/") / "big.bin").exists()

    # Verification of the newest point checks the full it builds on too.
    verified = _verify(api, runtime, backups[b1.name]["id"])
    assert verified["status"] == "success", verified["error"]
    log = run_log(api, verified["id"])
    assert any("builds on 1 earlier archive" in line for line in log)
    assert any(b0.key in line and "builds on" in line for line in log)
    assert _backups(api)[b0.name]["verify_status"] == "ok"

    # The full lost at the storage: the newest point's chain is broken, and says so.
    storage.destination.delete(b0.key)
    broken = _verify(api, runtime, backups[b1.name]["id"])
    assert broken["status"] == "failed"
    assert f"chain broken: {b0.name}, which this point builds on" in broken["error"]
    assert _backups(api)[b0.name]["verify_status"] == "failed"
    after = ok(api, "GET", f"/api/jobs/{job_id}/retention/preview?keep_last=1")
    decisions = {item["run_id"]: item for item in after["backups"]}
    assert decisions[run_of[b1.name]]["missing"] == [run_of[b0.name]]
    assert decisions[run_of[b0.name]]["keep"]


def test_import_of_a_chain_missing_an_archive_reports_it_and_verify_names_it(
    tmp_path: Path, api: ApiClient, runtime: Runtime, storage: Storage
) -> None:
    chain = _chain(tmp_path, storage)
    c0 = chain.store(NOW - timedelta(hours=3), full=True)
    (chain.source / "docs" / "readme.txt").write_text("c1\n")
    c1 = chain.store(NOW - timedelta(hours=2))
    (chain.source / "docs" / "readme.txt").write_text("c2, longer\n")
    c2 = chain.store(NOW - timedelta(hours=1))
    storage.destination.delete(c1.key)  # its manifest stays

    report = _imported(api, storage.row_id)
    assert report["imported"] == 2 and report["chain_points"] == 2
    assert report["problems"] == [f"{c1.key}.manifest.json: its archive is missing"]
    (line,) = report["broken_chains"]
    assert line.startswith(f"{c2.name}: its chain lacks {c1.name}")
    backups = _backups(api)
    with runtime.sessions() as session:
        job_id = session.scalars(select(Job.id)).one()
        point = session.get_one(ChainPoint, backups[c2.name]["run_id"])
    assert point.needs == [backups[c0.name]["run_id"], 0, backups[c2.name]["run_id"]]

    # The broken newest point is not the protected newest backup: the full is.
    preview = ok(api, "GET", f"/api/jobs/{job_id}/retention/preview?keep_last=1")
    decisions = {item["run_id"]: item for item in preview["backups"]}
    newest, full = decisions[backups[c2.name]["run_id"]], decisions[backups[c0.name]["run_id"]]
    assert newest["missing"] == [0]
    assert newest["reasons"][0] == "one of the last 1"
    assert "newest successful backup" in full["reasons"]

    verified = _verify(api, runtime, backups[c2.name]["id"])
    assert verified["status"] == "failed"
    assert (
        f"chain broken: {c1.name}, which this point builds on, is no longer stored"
        in (verified["error"])
    )
    assert _backups(api)[c0.name]["verify_status"] == "ok"  # the rest was checked

    # Without its manifest the point's chain comes from the catalog, and still fails.
    storage.destination.delete(manifest_key(c2.key))
    verified = _verify(api, runtime, backups[c2.name]["id"])
    assert verified["status"] == "failed"
    assert "an archive this point builds on was never in the catalog" in verified["error"]
    assert any(c0.key in line for line in run_log(api, verified["id"]))


def test_import_refuses_a_chain_that_is_not_its_own(
    tmp_path: Path, api: ApiClient, runtime: Runtime, storage: Storage
) -> None:
    chain = _chain(tmp_path, storage)
    d0 = chain.store(NOW - timedelta(hours=2), full=True)
    d1 = chain.store(NOW - timedelta(hours=1))
    d2 = chain.store(NOW - timedelta(minutes=30))
    forged = {
        d1.key: [d0.name, d2.name],  # ends with another archive
        d2.key: [d0.name, d2.name, d2.name],  # its previous is not the one before it
    }
    for key, archives in forged.items():
        manifest = json.loads(storage.destination.get_bytes(manifest_key(key)))
        manifest["chain"]["archives"] = archives
        document = json.dumps(manifest).encode()
        storage.destination.delete(manifest_key(key))  # destinations never overwrite
        storage.destination.put_bytes(manifest_key(key), document, "application/json")
    report = _imported(api, storage.row_id)
    assert report["imported"] == 1
    assert sorted(report["problems"]) == [
        f"{d1.key}.manifest.json: not imported: its chain does not end with its own archive",
        f"{d2.key}.manifest.json: not imported: its chain's previous archive is not the one"
        " before it",
    ]
    assert set(_backups(api)) == {d0.name}


def test_a_running_backup_keeps_the_point_it_extends(
    tmp_path: Path, api: ApiClient, runtime: Runtime, storage: Storage
) -> None:
    chain = _chain(tmp_path, storage)
    chain.store(NOW - timedelta(days=3), full=True)
    (chain.source / "docs" / "readme.txt").write_text("warned\n")
    warned = chain.store(NOW - timedelta(days=2))
    assert _imported(api, storage.row_id)["chain_points"] == 2
    run_id = _backups(api)[warned.name]["run_id"]
    with runtime.sessions.begin() as session:
        session.get_one(Run, run_id).status = RunStatus.WARNING
        job_id = session.scalars(select(Job.id)).one()

    def decision() -> dict[str, Any]:
        preview = ok(api, "GET", f"/api/jobs/{job_id}/retention/preview?keep_days=1")
        (item,) = [item for item in preview["backups"] if item["run_id"] == run_id]
        found: dict[str, Any] = item
        return found

    # A warning point past every rule goes (the full is the newest successful backup)...
    assert not decision()["keep"]
    # ...but not while a backup of the job runs: that backup builds on it.
    with runtime.sessions.begin() as session:
        session.add(
            Run(job_id=job_id, job_name="Documents", kind=RunKind.BACKUP, status=RunStatus.RUNNING)
        )
    assert decision()["keep"] and decision()["reasons"] == ["in use by a running task"]


def _backup(api: ApiClient, runtime: Runtime, job_id: int) -> dict[str, Any]:
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job_id}/run")["run"])
    assert run["status"] == "success", run["error"]
    return run


def test_real_chains_retention_verify_and_the_full_after_a_broken_chain(
    tmp_path: Path, api: ApiClient, runtime: Runtime, storage: Storage
) -> None:
    """The same with chains the incremental writer made: retention after each backup
    keeps the newest point's whole chain, GNU tar restores what is left, verification
    reads the chain, and after it finds the full gone the next backup is a new full."""
    source = make_small_tree(tmp_path / "source")
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Documents",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "archive_format": "tar.gz",
            "schedule": "",
            "destination_ids": [storage.row_id],
            "retention": {"keep_last": 1},
            "backup_mode": {"mode": "incremental", "full_every_runs": 3},
        },
    )["job"]
    trees: dict[int, dict[str, str]] = {}
    for index in range(5):
        (source / f"added-{index}.txt").write_text(f"point {index}\n")
        if index == 3:
            (source / "name with spaces é.txt").unlink()
        run = _backup(api, runtime, job["id"])
        trees[run["id"]] = file_hashes(source)
        if index == 2:  # a whole chain of three points, each needed by the newest
            assert len(_backups(api)) == 3
    with runtime.sessions() as session:
        points = {point.run_id: point for point in session.scalars(select(ChainPoint))}
    runs = sorted(trees)
    assert [points[run_id].level for run_id in runs] == [0, 1, 2, 0, 1]
    backups = _backups(api)
    assert sorted(item["run_id"] for item in backups.values()) == runs[3:]
    by_run = {item["run_id"]: item for item in backups.values()}
    full, newest = by_run[runs[3]], by_run[runs[4]]
    assert storage.keys() == {
        key for item in (full, newest) for key in (item["key"], item["key"] + ".manifest.json")
    }

    target = tmp_path / "restored"
    restore_with_tar(storage.destination, [full["key"], newest["key"]], target)
    assert file_hashes(target / str(source).lstrip("/")) == trees[runs[4]]

    verified = _verify(api, runtime, newest["id"])
    assert verified["status"] == "success", verified["error"]
    assert any(full["key"] in line for line in run_log(api, verified["id"]))

    storage.destination.delete(full["key"])
    broken = _verify(api, runtime, newest["id"])
    assert broken["status"] == "failed"
    full_name = full["key"].rsplit("/", 1)[-1]
    assert f"chain broken: {full_name}, which this point builds on" in broken["error"]

    # The next backup does not build on the broken chain, and retention then lets it go.
    (source / "after.txt").write_text("after the loss\n")
    run = _backup(api, runtime, job["id"])
    assert any("chain broken" in line for line in run_log(api, run["id"]))
    with runtime.sessions() as session:
        assert session.get_one(ChainPoint, run["id"]).level == 0
    assert [item["run_id"] for item in _backups(api).values()] == [run["id"]]


def _fresh_api(data_dir: Path) -> tuple[Runtime, ApiClient]:
    runtime = open_runtime(load_settings({"MACKUPER_DATA_DIR": str(data_dir)}))
    api = ApiClient(create_app(runtime, {"TESTING": True}).test_client())
    api.refresh_csrf("/setup")
    body = {"username": "admin", "password": ADMIN_PASSWORD}
    assert api.call("POST", "/api/setup/admin", body).status_code == 201
    assert api.call("POST", "/api/setup/finish").status_code == 200
    return runtime, api


def _chains(runtime: Runtime) -> dict[str, list[str]]:
    """Archive name -> the archive names of its point's needs, as the catalog records them."""
    with runtime.sessions() as session:
        points = list(session.scalars(select(ChainPoint)))
    names = {point.run_id: point.archive_name for point in points}
    return {point.archive_name: [names[run_id] for run_id in point.needs] for point in points}


def test_import_after_database_loss_rebuilds_the_chains_the_writer_made(tmp_path: Path) -> None:
    source = make_small_tree(tmp_path / "source")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    form = {"name": "Disk", "kind": "local", "path": str(tmp_path / "storage")}
    runtime, api = _fresh_api(data_dir)
    destination = ok(api, "POST", "/api/destinations", form)["destination"]
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Documents",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "archive_format": "tar.zst",
            "schedule": "",
            "destination_ids": [destination["id"]],
            "backup_mode": {"mode": "incremental", "full_every_runs": 3},
        },
    )["job"]
    for index in range(4):
        (source / f"added-{index}.txt").write_text(f"point {index}\n")
        _backup(api, runtime, job["id"])
    made = _chains(runtime)
    assert sorted(len(needs) for needs in made.values()) == [1, 1, 2, 3]
    runtime.engine.dispose()

    for database in data_dir.glob("mackuper.db*"):
        database.unlink()
    runtime, api = _fresh_api(data_dir)
    destination = ok(api, "POST", "/api/destinations", form)["destination"]
    report = _imported(api, destination["id"])
    assert (report["imported"], report["chain_points"], report["broken_chains"]) == (4, 4, [])
    assert _chains(runtime) == made
    newest = max(_backups(api).values(), key=lambda item: item["run_id"])
    verified = _verify(api, runtime, newest["id"])
    assert verified["status"] == "success", verified["error"]
    runtime.engine.dispose()


def test_the_full_of_a_chain_stays_locked_as_long_as_its_incrementals(
    tmp_path: Path, runtime: Runtime, api: ApiClient, moto_s3: S3Server
) -> None:
    """S3 Object Lock (moto enforces it): the lock set at upload covers a backup alone;
    once an incremental builds on the full, retention extends the full's lock (archive
    and manifest) to the incremental's, so the chain cannot be cut while its newest
    point is promised."""
    source = make_small_tree(tmp_path / "source")
    bucket = locked_bucket(moto_s3)
    destination = lock_destination(api, moto_s3, bucket, "GOVERNANCE", 2)
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Locked chain",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "archive_format": "tar.gz",
            "destination_ids": [destination],
            "retention": {"keep_days": 10},
            "timezone": "UTC",
            "backup_mode": {"mode": "incremental", "full_every_runs": 5},
        },
    )["job"]
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    full = back_up(runtime, job["id"], started)
    assert near(lock_at_server(moto_s3, bucket, full.key)[1], started + timedelta(days=10))
    (source / "docs" / "readme.txt").write_text("changed an hour later\n")
    incremental = back_up(runtime, job["id"], started + timedelta(hours=1))
    with runtime.sessions() as session:
        assert session.get_one(ChainPoint, incremental.run_id).needs == [
            full.run_id,
            incremental.run_id,
        ]
    # The incremental is promised 10 days from its end; the full now as long (it was
    # locked for 10 days from its own start at upload).
    promised = lock_at_server(moto_s3, bucket, incremental.key)[1]
    assert promised >= started + timedelta(hours=1, days=10)
    for key in (full.key, full.key + ".manifest.json"):
        mode, until = lock_at_server(moto_s3, bucket, key)
        assert mode == "GOVERNANCE" and until >= promised - timedelta(seconds=1), (key, until)
    with runtime.sessions() as session:
        logs = session.scalars(select(RunLog.message).where(RunLog.run_id == full.run_id)).all()
    assert any(f"lock of {full.key}" in line and "needed by run" in line for line in logs)
