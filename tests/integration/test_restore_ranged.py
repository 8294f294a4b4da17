"""Issue 21, Done when 1: single files come out of tar.zst, tar.zst.age and zip archives
on S3 by ranged reads only, counted at an HTTP front before moto, and equal the
source; the standard tools still open the archives whole."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.s3 import S3Destination
from mackuper.pipeline.age import X25519Identity
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.pipeline.seekable import FRAME_SIZE
from mackuper.restore.archives import DecryptionKeys, StoredArchive
from mackuper.restore.download import extract_path
from mackuper.runtime import Runtime
from mackuper.sources.local import LocalSource
from tests.conftest import ApiClient
from tests.integration.engine_support import RecordingHooks
from tests.integration.restore_support import backed_up, ok, restore
from tests.servers.faults import endpoint_address
from tests.servers.http_front import HttpFront, http_front
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name
from tests.trees import file_hashes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MIB = 1 << 20
PICKS = {
    "start": "a-first.txt",
    "middle": "m-middle.bin",  # 5 MiB: crosses frame boundaries
    "end": "z-last/last.txt",
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 40 MiB that does not compress, so a tar.zst holds ten 4 MiB frames."""
    root = tmp_path_factory.mktemp("ranged") / "source"
    root.mkdir()
    (root / "a-first.txt").write_text("the first file\n" * 100)
    for index in range(4):
        (root / f"b{index}.bin").write_bytes(os.urandom(4 * MIB))
    (root / "m-middle.bin").write_bytes(os.urandom(5 * MIB))
    for index in range(4):
        (root / f"n{index}.bin").write_bytes(os.urandom(4 * MIB))
    (root / "z-last").mkdir()
    (root / "z-last" / "last.txt").write_text("the last file\n" * 50)
    return root


@pytest.fixture(scope="module")
def bucket(moto_s3: S3Server) -> Iterator[str]:
    name = moto_s3.make_bucket(unique_bucket_name("ranged"))
    yield name
    remove_bucket(moto_s3, name)


@pytest.fixture(scope="module")
def front(moto_s3: S3Server) -> Iterator[HttpFront]:
    with http_front(endpoint_address(moto_s3.endpoint_url), lambda _m, _p: False) as serving:
        yield serving


IDENTITY = X25519Identity.generate()


def _stored(
    moto_s3: S3Server, bucket: str, front: HttpFront, source: Path, archive_format: str, age: bool
) -> StoredArchive:
    destination = S3Destination(
        bucket=bucket,
        access_key_id=moto_s3.access_key,
        secret_access_key=moto_s3.secret_key,
        region=moto_s3.region,
        endpoint_url=front.url,
        path_style=True,
    )
    plan = BackupPlan(
        job_id=1,
        job_slug=f"ranged-{archive_format}-{age}",
        job_name="Ranged",
        run_id=1,
        archive_format=archive_format,
        compression_level=None,
        source=LocalSource([str(source)]),
        destinations={1: destination},
        started_at=datetime.now(UTC),
        encryption=[IDENTITY.recipient()] if age else None,
    )
    hooks = RecordingHooks()
    result = run_backup(plan, hooks)
    assert result.problems == [] and result.failed_destinations == {}
    (key,) = [artifact["key"] for artifact in hooks.artifacts.values()]
    keys = DecryptionKeys([str(IDENTITY)]) if age else DecryptionKeys()
    return StoredArchive(destination, key, keys)


def _archive_reads(front: HttpFront, key: str, since: int) -> list[tuple[str | None, int]]:
    """(Range header, bytes answered) of each GET of the archive itself since `since`."""
    return [
        (seen.range, seen.sent)
        for seen in front.seen[since:]
        if seen.method == "GET" and seen.path.split("?")[0].endswith("/" + key)
    ]


def _download(archive: StoredArchive, path: str) -> bytes:
    download = extract_path(archive, path)
    return b"".join(download.body)


@pytest.mark.parametrize(
    ("archive_format", "age"),
    [("tar.zst", False), ("tar.zst", True), ("tar", False), ("tar", True), ("zip", False)],
)
def test_single_files_from_start_middle_and_end_are_read_by_ranges_only(
    moto_s3: S3Server,
    bucket: str,
    front: HttpFront,
    source: Path,
    archive_format: str,
    age: bool,
) -> None:
    archive = _stored(moto_s3, bucket, front, source, archive_format, age)
    size = moto_s3.client().head_object(Bucket=bucket, Key=archive.key)["ContentLength"]  # type: ignore[attr-defined]
    if archive_format == "tar.zst":
        manifest = json.loads(
            moto_s3.client()
            .get_object(Bucket=bucket, Key=archive.key + ".manifest.json")["Body"]
            .read()  # type: ignore[attr-defined]
        )
        assert len(manifest["index"]["frames"]) >= 10  # many frames, listed in the manifest
    for where, name in PICKS.items():
        wanted = (source / name).read_bytes()
        before = len(front.seen)
        got = _download(archive, str(source / name).lstrip("/"))
        assert hashlib.sha256(got).digest() == hashlib.sha256(wanted).digest(), where
        reads = _archive_reads(front, archive.key, before)
        assert reads and all(header is not None for header, _sent in reads), (
            where,
            reads,
            front.seen[before:],
        )
        fetched = sum(sent for _header, sent in reads)
        # The file's own bytes and at most about two frames (or zip blocks) around them.
        assert fetched <= len(wanted) + 2 * FRAME_SIZE + 64 * 1024, (where, fetched, reads)
        assert fetched < size / 3, (where, fetched, size)
        print(f"{archive_format}{'.age' if age else ''} {where}: read {fetched} of {size} bytes")  # noqa: T201


def test_standard_tools_open_the_multi_frame_archives_whole(
    moto_s3: S3Server, bucket: str, front: HttpFront, source: Path, tmp_path: Path
) -> None:
    for age in (False, True):
        archive = _stored(moto_s3, bucket, front, source, "tar.zst", age)
        stored = tmp_path / f"archive-{age}"
        stored.write_bytes(
            moto_s3.client().get_object(Bucket=bucket, Key=archive.key)["Body"].read()  # type: ignore[attr-defined]
        )
        key_file = tmp_path / "key.txt"
        key_file.write_text(str(IDENTITY) + "\n")
        target = tmp_path / f"out-{age}"
        target.mkdir()
        decrypt = f"age -d -i {key_file} {stored} | " if age else f"cat {stored} | "
        subprocess.run(
            ["bash", "-o", "pipefail", "-c", decrypt + f"zstd -d | tar -x -C {target}"],
            check=True,
        )
        assert file_hashes(target / str(source).lstrip("/")) == file_hashes(source)


def test_an_archive_whose_manifest_has_no_index_is_still_read_as_a_stream(
    moto_s3: S3Server, bucket: str, front: HttpFront, source: Path
) -> None:
    """Manifests written before the index (Mackuper 0.x) keep working."""
    archive = _stored(moto_s3, bucket, front, source, "tar.zst", False)
    client = moto_s3.client()
    manifest_key = archive.key + ".manifest.json"
    manifest = json.loads(client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())  # type: ignore[attr-defined]
    del manifest["index"]
    for item in manifest["files"]:
        del item["offset"]
    client.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())  # type: ignore[attr-defined]
    before = len(front.seen)
    name = PICKS["end"]
    assert _download(archive, str(source / name).lstrip("/")) == (source / name).read_bytes()
    assert [header for header, _sent in _archive_reads(front, archive.key, before)] == [None]


def test_a_selective_restore_run_reads_only_the_frames_of_its_selection(
    tmp_path: Path,
    api: ApiClient,
    runtime: Runtime,
    moto_s3: S3Server,
    bucket: str,
    front: HttpFront,
    source: Path,
) -> None:
    destination = ok(
        api,
        "POST",
        "/api/destinations",
        {
            "name": "Bucket behind a counting front",
            "kind": "s3",
            "bucket": bucket,
            "region": moto_s3.region,
            "endpoint_url": front.url,
            "path_style": True,
            "access_key_id": moto_s3.access_key,
            "secret_access_key": moto_s3.secret_key,
        },
    )["destination"]
    backup = backed_up(api, runtime, source, destination["id"], "tar.zst", "Selective")
    key = ok(api, "GET", f"/api/backups/{backup['id']}")["backup"]["key"]
    picked = [str(source / PICKS["middle"]).lstrip("/"), str(source / "z-last").lstrip("/")]
    before = len(front.seen)
    target = tmp_path / "restored"
    run = restore(api, runtime, backup["id"], {"kind": "local", "path": str(target)}, paths=picked)
    assert run["status"] == "success", run["error"]
    restored = file_hashes(target / str(source).lstrip("/"))
    assert restored == {
        path: digest
        for path, digest in file_hashes(source).items()
        if path in {PICKS["middle"], PICKS["end"]}
    }
    reads = _archive_reads(front, key, before)
    assert reads and all(header is not None for header, _sent in reads), reads
    fetched = sum(sent for _header, sent in reads)
    size = sum(entry.stat().st_size for entry in source.rglob("*") if entry.is_file())
    # Two reads: the middle file's two frames, and the last frame.
    assert fetched <= (source / PICKS["middle"]).stat().st_size + 3 * FRAME_SIZE, reads
    assert fetched < size / 2
    assert run["bytes_read"] == fetched


def test_a_folder_download_reads_only_the_frames_of_the_folder(
    moto_s3: S3Server, bucket: str, front: HttpFront, source: Path, tmp_path: Path
) -> None:
    archive = _stored(moto_s3, bucket, front, source, "tar.zst", True)
    before = len(front.seen)
    folder = tmp_path / "z-last.tar"
    folder.write_bytes(_download(archive, str(source / "z-last").lstrip("/")))
    reads = _archive_reads(front, archive.key, before)
    assert reads and all(header is not None for header, _sent in reads), reads
    assert sum(sent for _header, sent in reads) <= 2 * FRAME_SIZE
    subprocess.run(["tar", "-xf", str(folder), "-C", str(tmp_path)], check=True)
    assert file_hashes(tmp_path / "z-last") == file_hashes(source / "z-last")
