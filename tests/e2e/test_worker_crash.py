"""SIGKILL of the worker mid-upload: after the restart nothing half-done remains.

`mackuper serve` restarts a worker that dies; the new worker's recovery marks the
orphaned run `interrupted` and aborts its multipart upload. The S3 server sits
behind a throttled loopback proxy so the upload is really in flight when the
worker is killed. Runs against moto and rclone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.harness import BrowserClient, running_mackuper, s3_destination_payload
from tests.servers.s3 import S3Bucket
from tests.servers.throttle import ThrottledProxy, throttled
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e

LINK_SPEED = 8 * 1024 * 1024
SOURCE_FILES = 3
FILE_SIZE = 8 * 1024 * 1024


@pytest.fixture
def slow_bucket(s3_bucket: S3Bucket) -> Iterator[tuple[S3Bucket, ThrottledProxy]]:
    with throttled(s3_bucket.server.endpoint_url, LINK_SPEED) as proxy:
        yield s3_bucket, proxy


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def test_worker_killed_mid_upload_leaves_no_object_and_next_run_succeeds(
    tmp_path: Path, slow_bucket: tuple[S3Bucket, ThrottledProxy]
) -> None:
    (server, bucket), proxy = slow_bucket
    source = tmp_path / "source"
    source.mkdir()
    for index in range(SOURCE_FILES):
        (source / f"part-{index}.bin").write_bytes(os.urandom(FILE_SIZE))
    client = server.client()

    def pending_uploads() -> list[dict[str, Any]] | None:
        """The bucket's unfinished uploads; None while rclone is mid-abort and cannot list."""
        try:
            uploads: list[dict[str, Any]] = client.list_multipart_uploads(Bucket=bucket).get(
                "Uploads", []
            )
        except ClientError:
            return None
        return uploads

    with running_mackuper(tmp_path / "data") as mackuper:
        browser = BrowserClient(mackuper.url)
        payload = s3_destination_payload(server, bucket)
        payload["endpoint_url"] = proxy.url
        destination = browser.complete_setup(payload)
        job = browser.create_job("Crash test", source, destination["id"], archive_format="tar")
        first = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
        browser.wait_status(first, {"running"})
        wait_until(pending_uploads, 60, "the multipart upload never started")
        old_worker = mackuper.worker_pid()
        os.kill(old_worker, signal.SIGKILL)
        killed_at = time.monotonic()

        crashed = browser.wait_run(first, timeout=90)
        print(f"interrupted {time.monotonic() - killed_at:.1f} s after the kill")
        assert crashed["status"] == "interrupted", crashed
        assert mackuper.worker_pid() != old_worker
        wait_until(lambda: pending_uploads() == [], 30, "the dead worker's upload was not aborted")
        assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
        (artifact,) = browser.ok("GET", f"/api/runs/{first}")["run"]["artifacts"]
        assert artifact["state"] == "deleted"

        second = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
        finished = browser.wait_run(second, timeout=120)

    assert finished["status"] == "success", finished["error"]
    (stored,) = finished["artifacts"]
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert sorted(keys) == sorted([stored["key"], stored["key"] + ".manifest.json"])
    archive = tmp_path / "backup.tar"
    archive.write_bytes(client.get_object(Bucket=bucket, Key=stored["key"])["Body"].read())
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(extracted)], check=True)
    assert file_hashes(extracted / str(source).lstrip("/")) == file_hashes(source)
