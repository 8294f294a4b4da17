"""Done when 3 and 4: verification catches one flipped byte; the catalog comes back
from the bucket alone after the database is lost."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from mackuper.config import load_settings
from mackuper.models import Artifact, Run
from mackuper.runtime import Runtime, open_runtime
from mackuper.web import create_app
from tests.conftest import ADMIN_PASSWORD, ApiClient
from tests.integration.restore_support import (
    backed_up,
    finished_run,
    local_destination,
    ok,
    restore,
    run_log,
)
from tests.servers.s3 import S3Bucket
from tests.trees import b3sum, blake3_bytes, file_hashes, make_small_tree, sha256_file

pytestmark = pytest.mark.integration


def _verify(api: ApiClient, runtime: Runtime, backup_id: int, deep: bool) -> dict[str, Any]:
    run = ok(api, "POST", "/api/verify", {"artifact_id": backup_id, "deep": deep})["run"]
    assert run["kind"] == "verify"
    return finished_run(api, runtime, run)


@pytest.mark.parametrize("archive_format", ["tar.gz", "zip"])
def test_verify_passes_intact_archive_and_fails_after_one_byte_is_flipped(
    tmp_path: Path, api: ApiClient, runtime: Runtime, archive_format: str
) -> None:
    source = make_small_tree(tmp_path / "source")
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    backup = backed_up(api, runtime, source, destination["id"], archive_format)

    intact = _verify(api, runtime, backup["id"], deep=True)
    assert intact["status"] == "success", intact["error"]
    assert any("matches its manifest" in line for line in run_log(api, intact["id"]))
    (listed,) = ok(api, "GET", f"/api/backups?job_id={backup['job_id']}")["backups"]
    assert listed["verify_status"] == "ok" and listed["verified_at"]

    stored = storage / backup["key"]
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))

    damaged = _verify(api, runtime, backup["id"], deep=False)
    assert damaged["status"] == "failed"
    assert "the stored archive's BLAKE3 is" in damaged["error"]
    assert "changed or damaged" in damaged["error"]
    (listed,) = ok(api, "GET", f"/api/backups?job_id={backup['job_id']}")["backups"]
    assert listed["verify_status"] == "failed"


def _rewritten_entries(storage: Path, key: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = storage / (key + ".manifest.json")
    manifest = json.loads(path.read_text())
    for item in manifest["files"]:
        if item["type"] == "file":
            change(item)
    path.write_text(json.dumps(manifest))


def _as_before_blake3(item: dict[str, Any]) -> None:
    """The entry as a manifest written before BLAKE3 has it: the file's SHA-256."""
    del item["blake3"]
    item["sha256"] = sha256_file(Path("/" + item["path"]))


@pytest.mark.parametrize("archive_format", ["tar.gz", "zip"])
def test_deep_verify_compares_each_file_with_its_own_algorithm(
    tmp_path: Path, api: ApiClient, runtime: Runtime, archive_format: str
) -> None:
    """Entries hold BLAKE3 now and SHA-256 in older manifests (and both in one chain):
    a deep verification checks each file by the algorithm its entry names, and a file
    that differs from its entry fails it, whichever that is."""
    source = make_small_tree(tmp_path / "source")
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    backup = backed_up(api, runtime, source, destination["id"], archive_format)
    readme = str(source / "docs" / "readme.txt").lstrip("/")

    def wrong_readme(algorithm: str) -> Callable[[dict[str, Any]], None]:
        def change(item: dict[str, Any]) -> None:
            if item["path"] == readme:
                item[algorithm] = "0" * 64

        return change

    _rewritten_entries(storage, backup["key"], wrong_readme("blake3"))
    damaged = _verify(api, runtime, backup["id"], deep=True)
    assert damaged["status"] == "failed"
    assert f"{readme} differs from the file that was backed up" in damaged["error"]

    _rewritten_entries(storage, backup["key"], _as_before_blake3)
    older = _verify(api, runtime, backup["id"], deep=True)
    assert older["status"] == "success", older["error"]
    assert any("4 files read" in line for line in run_log(api, older["id"]))

    _rewritten_entries(storage, backup["key"], wrong_readme("sha256"))
    damaged = _verify(api, runtime, backup["id"], deep=True)
    assert damaged["status"] == "failed"
    assert f"{readme} differs from the file that was backed up" in damaged["error"]


def _as_stored_before_blake3(
    runtime: Runtime, storage: Path, backup: dict[str, Any], digest: str
) -> None:
    """The backup as one stored before the archive's hash was BLAKE3 has it: `digest` as
    its SHA-256 in the manifest's `archive` section and the catalog (runs and artifacts)."""
    path = storage / (backup["key"] + ".manifest.json")
    manifest = json.loads(path.read_text())
    manifest["archive"] = {"size": manifest["archive"]["size"], "sha256": digest}
    path.write_text(json.dumps(manifest))
    with runtime.sessions.begin() as session:
        for table in (Artifact, Run):
            row_id = backup["id"] if table is Artifact else backup["run_id"]
            session.execute(
                update(table).where(table.id == row_id).values(sha256=digest, blake3=None)
            )


def test_verify_checks_an_archive_stored_before_blake3_by_its_sha256(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    """Archives stored before 2026-12-02 carry a SHA-256 (manifest and catalog): they
    verify by it for good, and a changed byte still fails them."""
    source = make_small_tree(tmp_path / "source")
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    backup = backed_up(api, runtime, source, destination["id"], "tar.gz")
    assert backup["sha256"] is None and backup["blake3"] == b3sum(storage / backup["key"])
    stored = storage / backup["key"]
    _as_stored_before_blake3(runtime, storage, backup, sha256_file(stored))
    (listed,) = ok(api, "GET", f"/api/backups?job_id={backup['job_id']}")["backups"]
    assert (listed["sha256"], listed["blake3"]) == (sha256_file(stored), None)

    older = _verify(api, runtime, backup["id"], deep=True)
    assert older["status"] == "success", older["error"]
    assert f"sha256 {sha256_file(stored)}" in " ".join(run_log(api, older["id"]))
    assert older["sha256"] == sha256_file(stored) and older["blake3"] is None

    _as_stored_before_blake3(runtime, storage, backup, "0" * 64)
    damaged = _verify(api, runtime, backup["id"], deep=False)
    assert damaged["status"] == "failed"
    assert f"the stored archive's SHA-256 is {sha256_file(stored)}" in damaged["error"]


def test_an_archive_replaced_with_its_manifests_hash_fails_against_the_catalog(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    """Whoever replaces an archive and writes the new bytes' hash into its manifest has
    not fooled the verification: the catalog holds the hash the run stored, and the two
    disagreeing fails it (the artifact is marked failed), whichever algorithm is named."""
    source = make_small_tree(tmp_path / "source")
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    backup = backed_up(api, runtime, source, destination["id"], "tar.gz")
    stored = storage / backup["key"]
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01  # the same size: only the hash tells
    stored.write_bytes(bytes(data))
    path = storage / (backup["key"] + ".manifest.json")
    manifest = json.loads(path.read_text())
    for section in (
        {"size": stored.stat().st_size, "blake3": b3sum(stored)},
        {"size": stored.stat().st_size, "sha256": sha256_file(stored)},
    ):
        path.write_text(json.dumps({**manifest, "archive": section}))
        replaced = _verify(api, runtime, backup["id"], deep=False)
        assert replaced["status"] == "failed"
        assert (
            "the catalog and the manifest disagree about this archive's hash" in (replaced["error"])
        )
        assert f"BLAKE3 {backup['blake3']} against" in replaced["error"]
        (listed,) = ok(api, "GET", f"/api/backups?job_id={backup['job_id']}")["backups"]
        assert listed["verify_status"] == "failed"


def _fresh_api(data_dir: Path) -> tuple[Runtime, ApiClient]:
    runtime = open_runtime(load_settings({"MACKUPER_DATA_DIR": str(data_dir)}))
    api = ApiClient(create_app(runtime, {"TESTING": True}).test_client())
    api.refresh_csrf("/setup")
    body = {"username": "admin", "password": ADMIN_PASSWORD}
    assert api.call("POST", "/api/setup/admin", body).status_code == 201
    assert api.call("POST", "/api/setup/finish").status_code == 200
    return runtime, api


def test_import_after_database_loss_restores_a_backup_made_before(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    server, bucket = s3_bucket
    destination_form = {
        "name": "Bucket",
        "kind": "s3",
        "bucket": bucket,
        "region": server.region,
        "endpoint_url": server.endpoint_url,
        "path_style": True,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
    }
    source = make_small_tree(tmp_path / "source")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    runtime, api = _fresh_api(data_dir)
    destination = ok(api, "POST", "/api/destinations", destination_form)["destination"]
    before = backed_up(api, runtime, source, destination["id"], "tar.xz", "Fotos de Élodie")
    runtime.engine.dispose()

    for database in data_dir.glob("mackuper.db*"):
        database.unlink()
    runtime, api = _fresh_api(data_dir)
    assert ok(api, "GET", "/api/backups")["backups"] == []
    destination = ok(api, "POST", "/api/destinations", destination_form)["destination"]

    report = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]
    assert report["imported"] == 1 and report["jobs_created"] == ["Fotos de Élodie"]
    again = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]
    assert again["imported"] == 0 and again["already_known"] == 1
    (job,) = ok(api, "GET", "/api/jobs")["jobs"]
    assert job["slug"] == "fotos-de-elodie" and job["enabled"] is False
    (backup,) = ok(api, "GET", "/api/backups")["backups"]
    assert (backup["key"], backup["blake3"]) == (before["key"], before["blake3"])
    body = server.client().get_object(Bucket=bucket, Key=backup["key"])["Body"].read()
    assert backup["blake3"] == blake3_bytes(body)

    target = tmp_path / "restored"
    run = restore(api, runtime, backup["id"], {"kind": "local", "path": str(target)})
    assert run["status"] == "success", run["error"]
    assert file_hashes(target / str(source).lstrip("/")) == file_hashes(source)
    runtime.engine.dispose()
