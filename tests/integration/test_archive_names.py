"""Every run's archive has its own name, and no writer replaces a stored object.

Archive names have one-second resolution; two runs of a job that start in the
same second used to share a name and the second silently replaced the first.
These tests run the real pipeline against a local directory and both S3 servers
(moto, which honours `If-None-Match`, and rclone, which ignores it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from mackuper.core.naming import archive_key, manifest_key
from mackuper.destinations.base import Destination, ObjectExists
from mackuper.destinations.local import LocalDestination
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.engine_support import RecordingHooks, backup, extract
from tests.integration.restore_support import local_destination, ok, restore
from tests.integration.test_engine_destinations import s3_destination
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name
from tests.trees import file_hashes

pytestmark = pytest.mark.integration

SECOND = datetime(2026, 11, 30, 15, 57, 43, 250_000, tzinfo=UTC)
PLANTED = b"an object that is not Mackuper's and must stay as it is\n"


@dataclass
class Store:
    """A destination and a way around it, to plant and read objects directly."""

    destination: Destination
    plant: Callable[[str, bytes], None]
    read: Callable[[str], bytes]
    leftovers: Callable[[], list[str]]
    """Temporary files or multipart uploads still present."""


@pytest.fixture(params=["local", "moto", "rclone"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "local":
        root = tmp_path / "backups"

        def plant_file(key: str, data: bytes) -> None:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        yield Store(
            LocalDestination(str(root)),
            plant_file,
            lambda key: (root / key).read_bytes(),
            lambda: sorted(path.name for path in root.rglob("*") if ".partial-" in path.name),
        )
        return
    server: S3Server = request.getfixturevalue(f"{request.param}_s3")
    bucket = server.make_bucket(unique_bucket_name("names"))
    client = server.client()

    def uploads() -> list[str]:
        try:
            listed = client.list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
        except ClientError as error:
            # rclone answers NoSuchUpload for a bucket that never had an upload.
            assert error.response["Error"]["Code"] == "NoSuchUpload"
            return []
        return [upload["Key"] for upload in listed.get("Uploads", [])]

    yield Store(
        s3_destination(server, bucket),
        lambda key, data: client.put_object(Bucket=bucket, Key=key, Body=data),  # type: ignore[attr-defined]
        lambda key: client.get_object(Bucket=bucket, Key=key)["Body"].read(),  # type: ignore[attr-defined]
        uploads,
    )
    remove_bucket(server, bucket)


def _opened_with_tar(data: bytes, archive_format: str, work: Path) -> dict[str, str]:
    """File name -> SHA-256 of what GNU tar extracts from `data`."""
    work.mkdir(parents=True)
    archive = work / f"archive.{archive_format}"
    archive.write_bytes(data)
    extract(archive, archive_format, work / "out")
    return {Path(name).name: digest for name, digest in file_hashes(work / "out").items()}


def test_runs_in_one_second_get_their_own_names_and_keep_their_own_data(
    store: Store, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    hooks = RecordingHooks()  # one catalog, as the database is for every worker
    names = []
    for number in range(1, 5):
        (source / "state.txt").write_text(f"the source as it was at run {number}\n")
        result, _ = backup(source, {1: store.destination}, "tar.gz", hooks=hooks, started_at=SECOND)
        names.append(result.archive_name)
    assert names == [
        "backup_20261130_155743.tar.gz",
        "backup_20261130_155743-2.tar.gz",
        "backup_20261130_155743-3.tar.gz",
        "backup_20261130_155743-4.tar.gz",
    ]
    for number, name in enumerate(names, start=1):
        key = f"engine-test/2026/11/{name}"
        expected = hashlib.sha256(f"the source as it was at run {number}\n".encode()).hexdigest()
        assert _opened_with_tar(store.read(key), "tar.gz", tmp_path / f"check-{number}") == {
            "state.txt": expected
        }
        assert '"run_id":42' in store.read(manifest_key(key)).decode()
    assert store.leftovers() == []


@pytest.mark.parametrize("planted", ["archive", "manifest"])
def test_an_object_planted_at_the_name_is_left_alone_and_the_run_takes_the_next_name(
    store: Store, tmp_path: Path, planted: str
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "file.txt").write_text("mine\n")
    first = archive_key("", "engine-test", SECOND, "tar.zst")
    store.plant(first if planted == "archive" else manifest_key(first), PLANTED)

    result, hooks = backup(source, {1: store.destination}, "tar.zst", started_at=SECOND)

    assert result.archive_name == "backup_20261130_155743-2.tar.zst"
    assert store.read(first if planted == "archive" else manifest_key(first)) == PLANTED
    second = archive_key("", "engine-test", SECOND, "tar.zst", sequence=2)
    assert _opened_with_tar(store.read(second), "tar.zst", tmp_path / "check") == {
        "file.txt": hashlib.sha256(b"mine\n").hexdigest()
    }
    assert "taking the next name" in hooks.messages("info")
    assert [artifact["key"] for artifact in hooks.artifacts.values()] == [first, second]
    assert [artifact["state"] for artifact in hooks.artifacts.values()] == ["deleted", "stored"]


@pytest.mark.parametrize("size", [1000, 6 * 1024 * 1024], ids=["one-request", "multipart"])
def test_a_writer_never_replaces_an_object_that_appears_while_it_writes(
    store: Store, size: int
) -> None:
    key = "job/2026/11/backup_20261130_155743.tar"
    writer = store.destination.open_writer(key, {"mackuper-job": "job", "mackuper-run": "7"})
    writer.write(b"x" * size)
    store.plant(key, PLANTED)  # another writer (or an attacker) got there first

    with pytest.raises(ObjectExists, match="already exists|another writer"):
        writer.commit()

    assert store.read(key) == PLANTED
    assert store.leftovers() == []


def test_a_small_object_is_never_replaced_either(store: Store) -> None:
    store.plant("job/manifest.json", PLANTED)
    with pytest.raises(ObjectExists):
        store.destination.put_bytes("job/manifest.json", b"{}", "application/json")
    assert store.read("job/manifest.json") == PLANTED


def test_the_conditional_write_refuses_what_the_look_before_it_missed(
    moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer publishing between the look (HEAD) and the publishing request:
    the server refuses the request itself (If-None-Match), for both kinds of upload."""
    bucket = moto_s3.make_bucket(unique_bucket_name("race"))
    client = moto_s3.client()
    destination = s3_destination(moto_s3, bucket)
    monkeypatch.setattr(destination, "stat", lambda key: None)  # the look saw nothing
    try:
        for size in (1000, 6 * 1024 * 1024):
            key = f"job/backup-{size}.tar"
            writer = destination.open_writer(key, {"mackuper-run": "7"})
            writer.write(b"x" * size)
            client.put_object(Bucket=bucket, Key=key, Body=PLANTED)  # type: ignore[attr-defined]
            with pytest.raises(ObjectExists, match="another writer"):
                writer.commit()
            assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == PLANTED  # type: ignore[attr-defined]
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # type: ignore[attr-defined]
    finally:
        remove_bucket(moto_s3, bucket)


def test_import_brings_back_both_archives_of_one_second_each_with_its_own_data(
    tmp_path: Path, runtime: Runtime, api: ApiClient
) -> None:
    """After losing the database, the numbered name is an archive like any other."""
    root = tmp_path / "backups"
    source = tmp_path / "source"
    source.mkdir()
    hooks = RecordingHooks()
    for number in (1, 2):
        (source / "state.txt").write_text(f"run {number}\n")
        backup(source, {1: LocalDestination(str(root))}, "tar.gz", hooks=hooks, started_at=SECOND)

    destination = local_destination(api, root)
    report = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]
    assert report["imported"] == 2, report
    backups = sorted(ok(api, "GET", "/api/backups")["backups"], key=lambda item: item["key"])
    assert [item["key"].rsplit("/", 1)[-1] for item in backups] == [
        "backup_20261130_155743-2.tar.gz",
        "backup_20261130_155743.tar.gz",
    ]
    for item, number in zip(backups, (2, 1), strict=True):
        target = tmp_path / f"restored-{number}"
        run = restore(api, runtime, item["id"], {"kind": "local", "path": str(target)})
        assert run["status"] == "success", run["error"]
        (restored,) = target.rglob("state.txt")
        assert restored.read_text() == f"run {number}\n"
