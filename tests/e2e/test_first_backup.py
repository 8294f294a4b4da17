"""Issue 2's promise, end to end: wizard, job, Run now, a tar.gz in S3 that GNU tar opens."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.harness import BrowserClient, running_mackuper, s3_destination_payload
from tests.servers.s3 import S3Bucket
from tests.trees import b3sum, file_hashes, make_small_tree

pytestmark = pytest.mark.e2e


def test_wizard_job_run_now_lands_a_tar_gz_that_gnu_tar_extracts(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    server, bucket = s3_bucket
    source = make_small_tree(tmp_path / "source")
    with running_mackuper(tmp_path / "data") as mackuper:
        browser = BrowserClient(mackuper.url)
        destination = browser.complete_setup(s3_destination_payload(server, bucket))
        job = browser.create_job(
            "Home documents", source, destination["id"], archive_format="tar.gz"
        )
        run = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
        finished = browser.wait_run(run["id"])
        history = browser.ok("GET", f"/api/runs?job_id={job['id']}")["runs"]

    assert finished["status"] == "success", finished["error"]
    assert [entry["id"] for entry in history] == [run["id"]]
    assert history[0]["bytes_written"] == finished["bytes_written"] > 0
    assert history[0]["blake3"] == finished["blake3"] and finished["sha256"] is None
    (artifact,) = finished["artifacts"]
    assert artifact["state"] == "stored"
    key = artifact["key"]
    assert key.startswith("home-documents/") and key.endswith(".tar.gz")

    s3 = server.client()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(body) == finished["bytes_written"]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key + ".manifest.json")["Body"].read())
    assert manifest["archive"] == {"size": len(body), "blake3": finished["blake3"]}

    archive = tmp_path / "backup.tar.gz"
    archive.write_bytes(body)
    assert b3sum(archive) == finished["blake3"]
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(extracted)], check=True)
    restored_root = extracted / str(source).lstrip("/")
    assert file_hashes(restored_root) == file_hashes(source)
    assert (restored_root / "empty").is_dir()
    assert (restored_root / "link-to-readme").readlink() == Path("docs/readme.txt")
