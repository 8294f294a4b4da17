"""A job's first backup shows a percentage while it runs (issue 15, item 6): with no
earlier run to go by, the worker counts the local source beside the backup and the
run page turns that total into a percentage and an ETA. Before, the first run had
neither, and a full-width pulsing bar looked complete."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in
from tests.e2e.slowlink import slow_link
from tests.harness import (
    BrowserClient,
    running_mackuper,
    s3_destination_payload,
)
from tests.servers.s3 import S3Bucket
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e

# 6 MiB of incompressible data through a 512 KiB/s link: the run lasts seconds.
UPLINK_BYTES_PER_SECOND = 512 * 1024


def test_first_backup_shows_a_percentage_before_it_ends(
    tmp_path: Path, s3_bucket: S3Bucket, ui: Any
) -> None:
    server, bucket = s3_bucket
    source = tmp_path / "source"
    (source / "photos").mkdir(parents=True)
    for index in range(6):
        (source / "photos" / f"img_{index}.raw").write_bytes(os.urandom(1024 * 1024))
    with (
        slow_link(server.endpoint_url, UPLINK_BYTES_PER_SECOND) as endpoint,
        running_mackuper(tmp_path / "data") as mackuper,
    ):
        client = BrowserClient(mackuper.url)
        payload = {**s3_destination_payload(server, bucket), "endpoint_url": endpoint}
        destination = client.complete_setup(payload)
        job = client.create_job("Photos", source, destination["id"], archive_format="tar.gz")
        run = client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]

        page, watch = ui(mackuper.url)
        log_in(page)
        page.goto(f"/runs/{run['id']}")
        bar = page.get_by_role("progressbar")
        expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"), timeout=60_000)
        # Seen while the run is still going, and never as a full bar before the end.
        expect(page.get_by_test_id("run-status")).to_have_text("running")
        assert int(bar.get_attribute("aria-valuenow") or "100") < 100
        progress = page.get_by_role("region", name="Progress")
        expect(progress).to_contain_text(re.compile(r"\d+ %"))
        expect(progress).to_contain_text(re.compile("left|almost done|estimating"))
        expect(page.get_by_test_id("run-status")).to_have_text("success", timeout=120_000)
        finished = client.wait_run(run["id"])
        watch.assert_clean()

    (artifact,) = finished["artifacts"]
    archive = tmp_path / "backup.tar.gz"
    archive.write_bytes(
        server.client().get_object(Bucket=bucket, Key=artifact["key"])["Body"].read()
    )
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(extracted)], check=True)
    assert file_hashes(extracted / str(source).lstrip("/")) == file_hashes(source)
