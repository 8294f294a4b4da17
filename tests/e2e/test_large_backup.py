"""A backup larger than memory budgets streams: multipart upload, nothing staged on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import blake3
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
from tests.trees import b3sum, file_hashes

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
SOURCE_MIB = 300


STAGING_PROBE = """
import os, sys
path = os.path.join(sys.argv[1], "probe.bin")
with open(path, "wb") as handle:
    for _ in range(int(sys.argv[2]) // (1 << 20)):
        handle.write(b"x" * (1 << 20))
os.remove(path)
print(next(line.split()[1] for line in open("/proc/self/io") if line.startswith("write_bytes:")))
"""


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """TEMP_DIR and the system temp directory of the worker, on a file system whose
    writes /proc/PID/io counts (no root, no mount needed).

    The measure is proven first: a process of ours that writes two parts there (and
    removes them, unsynced, as staging would) must see them in its own write_bytes.
    On a file system that does not count (tmpfs), the check could not fail, so it
    is skipped, saying why.
    """
    directory = tmp_path / "scratch"
    directory.mkdir()
    probe = subprocess.run(
        [sys.executable, "-c", STAGING_PROBE, str(directory), str(2 * DEFAULT_PART_SIZE)],
        capture_output=True,
        text=True,
        check=True,
    )
    if int(probe.stdout) < 2 * DEFAULT_PART_SIZE:
        pytest.skip(f"writes under {directory} are not counted in /proc/PID/io (tmpfs?)")
    return directory


def _write_incompressible(directory: Path) -> None:
    directory.mkdir()
    for index in range(3):
        with (directory / f"random-{index}.bin").open("wb") as handle:
            for _ in range(SOURCE_MIB // 3):
                handle.write(os.urandom(MIB))


def test_300_mib_streams_through_multipart_without_staging_on_disk(
    tmp_path: Path, moto_s3: S3Server, scratch: Path
) -> None:
    source = tmp_path / "source"
    _write_incompressible(source)
    bucket = moto_s3.make_bucket()
    (scratch / "tmp").mkdir()
    env = {"TEMP_DIR": str(scratch / "temp"), "TMPDIR": str(scratch / "tmp")}
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
    # Every byte the worker process put on any disk (database and logs included) is
    # less than one part: staging even one part would show here (see `scratch`).
    assert written < DEFAULT_PART_SIZE, f"worker wrote {written} bytes to disk"
    print(f"worker disk writes: {written} bytes; worker peak RSS: {peak / MIB:.0f} MiB")

    client = moto_s3.client()
    key = finished["artifacts"][0]["key"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    archive = tmp_path / "download.tar.gz"
    digest = blake3.blake3()
    with archive.open("wb") as handle:
        for chunk in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MIB):
            handle.write(chunk)
            digest.update(chunk)
    assert digest.hexdigest() == finished["blake3"] == b3sum(archive)
    assert (
        client.head_object(Bucket=bucket, Key=key)["ETag"]
        .strip('"')
        .endswith(f"-{-(-finished['bytes_written'] // DEFAULT_PART_SIZE)}")
    )
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(extracted)], check=True)
    assert file_hashes(extracted / str(source).lstrip("/")) == file_hashes(source)
