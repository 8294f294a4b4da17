"""One contract for every destination kind: local, S3 on moto, S3 on rclone.

Each behaviour the rest of Mackuper relies on is tested once here and runs over
every kind (borgstore and restic run one backend suite the same way): nothing is
visible before commit, abort and crash leftovers leave nothing, listing, stat,
ranged reads, presigned links, deletion, and no writer ever replaces an object.
A new destination kind joins by adding itself to `storage_support.KINDS`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import requests

from mackuper.destinations.base import DestinationError, ObjectExists
from tests.integration.storage_support import PLANTED, Store, s3_destination, store
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name

pytestmark = pytest.mark.integration

__all__ = ["store"]  # the fixture, parametrized over every destination kind

NO_LINKS = {"local", "sftp", "rclone"}
"""Kinds without presigned links."""
MIB = 1024 * 1024
BIG = 9 * MIB
"""Past the 8 MiB S3 part: a multipart upload, with parts in flight before commit."""


def _as_if_killed(writer: object) -> None:
    """What a killed worker leaves: its open file closed by the kernel, its upload
    threads gone, and none of its own clean-up run."""
    handle = getattr(writer, "_handle", None)
    if handle is not None:
        handle.close()
    executor = getattr(writer, "executor", None)
    if executor is not None:
        executor.shutdown(wait=True)
    process = getattr(writer, "process", None)
    if process is not None:
        # The worst case for rclone: its input ended (not killed with the worker), so it
        # stored what it had under the temporary name.
        process.stdin.close()
        process.wait()
        writer.destination.finish(process)  # type: ignore[attr-defined]


def _write(store: Store, key: str, data: bytes, chunk: int = MIB) -> None:
    writer = store.destination.open_writer(key, {"mackuper-run": "1"})
    for start in range(0, len(data), chunk):
        writer.write(memoryview(data)[start : start + chunk])
    writer.commit()


@pytest.mark.parametrize("size", [0, 1000, BIG], ids=["empty", "small", "multipart"])
def test_an_object_is_visible_only_after_commit_and_reads_back_whole(
    store: Store, size: int
) -> None:
    data = os.urandom(size)
    key = "job/2026/11/backup.tar"
    writer = store.destination.open_writer(key, {"mackuper-run": "1"})
    writer.write(data)
    assert store.destination.stat(key) is None
    assert [item.key for item in store.destination.list("job/")] == []

    stored = writer.commit()

    assert stored.size == size
    found = store.destination.stat(key)
    assert found is not None and (found.key, found.size) == (key, size)
    assert store.destination.get_bytes(key) == data
    assert b"".join(store.destination.iter_chunks(key, 64 * 1024)) == data
    assert hashlib.sha256(store.read(key)).digest() == hashlib.sha256(data).digest()
    assert store.leftovers() == []


def test_abort_leaves_nothing_behind(store: Store) -> None:
    key = "job/aborted.tar"
    writer = store.destination.open_writer(key, {})
    writer.write(os.urandom(BIG))
    assert writer.abort() is True  # False only when the destination could not be reached
    assert store.destination.stat(key) is None
    assert list(store.destination.list("")) == []
    assert store.leftovers() == []
    assert writer.abort() is True  # twice is harmless


def test_what_a_dead_writer_left_is_removed_by_abort_upload(store: Store) -> None:
    """A worker killed mid-upload leaves a temporary file or a multipart upload;
    recovery removes it with the id recorded when the upload started."""
    key = "job/crashed.tar"
    started: list[str] = []
    writer = store.destination.open_writer(key, {}, started.append)
    writer.write(os.urandom(BIG))
    _as_if_killed(writer)
    assert len(started) == 1 and store.leftovers() != []
    assert [item.key for item in store.destination.list("")] == []  # never listed

    store.destination.abort_upload(key, started[0])

    assert store.leftovers() == []
    assert store.destination.stat(key) is None
    store.destination.abort_upload(key, started[0])  # twice is harmless


def test_list_yields_every_object_under_a_prefix_with_its_size(store: Store) -> None:
    for key, size in {"a/1.tar": 10, "a/b/2.tar": 20, "ab/3.tar": 30, "c/4.tar": 40}.items():
        store.destination.put_bytes(key, os.urandom(size), "application/octet-stream")
    listed = {item.key: item.size for item in store.destination.list("a/")}
    assert listed == {"a/1.tar": 10, "a/b/2.tar": 20}
    assert {item.key for item in store.destination.list("")} == {
        "a/1.tar",
        "a/b/2.tar",
        "ab/3.tar",
        "c/4.tar",
    }


def test_stat_of_a_missing_object_is_none(store: Store) -> None:
    assert store.destination.stat("no/such/object.tar") is None


def test_ranged_reads_return_exactly_the_bytes_asked_for(store: Store) -> None:
    data = os.urandom(3 * MIB + 7)
    key = "job/ranged.bin"
    _write(store, key, data)
    size = len(data)
    for offset, length in [(0, 10), (MIB + 3, 4096), (size - 5, 5), (size - 5, 100)]:
        assert store.destination.read_range(key, offset, length) == data[offset : offset + length]
    assert store.destination.read_range(key, 10, 0) == b""
    assert store.destination.read_range(key, size, 10) == b""
    assert store.destination.read_range(key, size + 100, 10) == b""
    with pytest.raises(DestinationError):
        store.destination.read_range("job/missing.bin", 0, 10)


def test_delete_removes_the_object_and_a_missing_one_is_no_error(store: Store) -> None:
    store.destination.put_bytes("job/x.json", b"{}", "application/json")
    store.destination.delete("job/x.json")
    assert store.destination.stat("job/x.json") is None
    store.destination.delete("job/x.json")


def test_presigned_links_download_the_object_where_the_kind_has_them(store: Store) -> None:
    store.destination.put_bytes("job/file.tar", b"tar bytes", "application/x-tar")
    url = store.destination.presign("job/file.tar", "Home - backup.tar", 60)
    if store.destination.kind in NO_LINKS:
        assert url is None  # the web process streams the object itself
        return
    assert url is not None
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"tar bytes"


def test_check_access_proves_write_read_delete_and_leaves_nothing(store: Store) -> None:
    store.destination.check_access()
    assert list(store.destination.list("")) == []


@pytest.mark.parametrize("size", [1000, BIG], ids=["one-request", "multipart"])
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


@pytest.mark.parametrize("size", [0, 1000, 2 * MIB + 5], ids=["empty", "small", "pieces"])
def test_a_spooled_file_is_stored_whole_from_its_start_and_never_replaces(
    store: Store, size: int, tmp_path: Path
) -> None:
    """put_file: a run's manifest, spooled to a temporary file (pipeline/filelist.py)."""
    data = os.urandom(size)
    with (tmp_path / "spool").open("w+b") as spool:
        spool.write(data)  # left at its end, as a writer leaves it
        store.destination.put_file("job/manifest.json", spool, "application/json")
        assert store.read("job/manifest.json") == data
        stored = store.destination.stat("job/manifest.json")
        assert stored is not None and stored.size == size
        with pytest.raises(ObjectExists):
            store.destination.put_file("job/manifest.json", spool, "application/json")
    assert store.read("job/manifest.json") == data
    assert store.leftovers() == []


def test_the_conditional_write_refuses_what_the_look_before_it_missed(
    moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer publishing between the look (HEAD) and the publishing request:
    the server refuses the request itself (If-None-Match), for both kinds of upload.
    (rclone serve s3 ignores the header; there the look is the guard.)"""
    bucket = moto_s3.make_bucket(unique_bucket_name("race"))
    client = moto_s3.client()
    destination = s3_destination(moto_s3, bucket)
    monkeypatch.setattr(destination, "stat", lambda key: None)  # the look saw nothing
    try:
        for size in (1000, BIG):
            key = f"job/backup-{size}.tar"
            writer = destination.open_writer(key, {"mackuper-run": "7"})
            writer.write(b"x" * size)
            client.put_object(Bucket=bucket, Key=key, Body=PLANTED)  # type: ignore[attr-defined]
            with pytest.raises(ObjectExists, match="another writer"):
                writer.commit()
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]
            assert body == PLANTED
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])  # type: ignore[attr-defined]
        assert uploads == []
    finally:
        remove_bucket(moto_s3, bucket)
