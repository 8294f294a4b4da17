"""Issue 19, item 4 (lock part): the job form's retention preview shows a backup the policy
would delete but whose archive is locked (S3 Object Lock on moto) as "locked until"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.test_ui_keys import log_in
from tests.harness import BrowserClient, running_mackuper, s3_destination_payload
from tests.servers.s3 import S3Server, unique_bucket_name
from tests.trees import make_small_tree

pytestmark = pytest.mark.e2e


def test_the_retention_preview_shows_locked_until(
    tmp_path: Path, ui: Any, moto_s3: S3Server
) -> None:
    source = make_small_tree(tmp_path / "source")
    bucket = unique_bucket_name("uilock")
    moto_s3.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    with running_mackuper(tmp_path / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        destination = client.complete_setup(
            {
                **s3_destination_payload(moto_s3, bucket, "Locked S3"),
                "object_lock_mode": "GOVERNANCE",
                "lock_days": 3,
            }
        )
        job = client.create_job("Locked job", source, destination["id"], retention={"keep_last": 1})
        runs = [
            client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
            for _ in range(2)
        ]
        assert [run["status"] for run in runs] == ["success", "success"]

        page, watch = ui(mackuper.url)
        log_in(page)
        page.goto("/jobs")
        page.get_by_role("row").filter(has_text="Locked job").get_by_role(
            "button", name="Edit"
        ).click()
        page.get_by_role("button", name="Preview retention").click()
        preview = page.get_by_role("list", name="Retention preview")
        expect(preview).to_contain_text("locked until")
        expect(preview).to_contain_text("deleted after that")
        expect(preview.get_by_role("listitem")).to_have_count(2)
        watch.assert_clean()
