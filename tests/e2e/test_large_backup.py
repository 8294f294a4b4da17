"""A backup larger than memory budgets streams: multipart upload, nothing staged on disk."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mackuper.destinations.s3 import DEFAULT_PART_SIZE
from tests.harness import (
    BrowserClient,
    disk_bytes_written,
    peak_rss,
    running_mackuper,
    s3_destination_payload,
)
from tests.servers.s3 import S3Server
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
SOURCE_MIB = 300


@pytest.fixture
def one_part_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs exactly one S3 part large, for TEMP_DIR and the system temp directory.

    Anything larger than a part written there would fail with 'no space left'.
    """
    mount_point = tmp_path / "scratch"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DEFAULT_PART_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _write_incompressible(directory: Path) -> None:
    directory.mkdir()
    for index in range(3):
        with (directory / f"random-{index}.bin").open("wb") as handle:
            for _ in range(SOURCE_MIB // 3):
                handle.write(os.urandom(MIB))


def test_300_mib_streams_through_multipart_without_staging_on_disk(
    tmp_path: Path, moto_s3: S3Server, one_part_tmpfs: Path
) -> None:
    source = tmp_path / "source"
    _write_incompressible(source)
    bucket = moto_s3.make_bucket()
    (one_part_tmpfs / "tmp").mkdir()
    env = {"TEMP_DIR": str(one_part_tmpfs / "temp"), "TMPDIR": str(one_part_tmpfs / "tmp")}
    with running_mackuper(tmp_path / "data", env) as mackuper:
        browser = BrowserClient(mackuper.url)
        destination = browser.complete_setup(s3_destination_payload(moto_s3, bucket))
        job = browser.create_job(
            "Big", source, destination["id"], archive_format="tar.gz", compression_level=1
        )
        worker = mackuper.worker_pid()
        written_before = disk_bytes_written(worker)
        run = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
        finished = browser.wait_run(run["id"], timeout=240)
        written = disk_bytes_written(worker) - written_before
        peak = peak_rss(worker)

    assert finished["status"] == "success", finished["error"]
    assert finished["bytes_written"] > SOURCE_MIB * MIB
    # Every byte the worker process put on any disk (database included) is less than
    # one part; the scratch tmpfs is one part large, so nothing bigger fit there either.
    assert written < DEFAULT_PART_SIZE, f"worker wrote {written} bytes to disk"
    print(f"worker disk writes: {written} bytes; worker peak RSS: {peak / MIB:.0f} MiB")

    client = moto_s3.client()
    key = finished["artifacts"][0]["key"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    archive = tmp_path / "download.tar.gz"
    digest = hashlib.sha256()
    with archive.open("wb") as handle:
        for chunk in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MIB):
            handle.write(chunk)
            digest.update(chunk)
    assert digest.hexdigest() == finished["sha256"]
    assert (
        client.head_object(Bucket=bucket, Key=key)["ETag"]
        .strip('"')
        .endswith(f"-{-(-finished['bytes_written'] // DEFAULT_PART_SIZE)}")
    )
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(extracted)], check=True)
    assert file_hashes(extracted / str(source).lstrip("/")) == file_hashes(source)
