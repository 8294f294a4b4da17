"""Issue 19, item 4 (lock part): the job form's retention preview shows a backup the policy
would delete but whose archive is locked (S3 Object Lock on moto) as "locked until"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.test_ui_walkthrough import fill_s3_destination
from tests.harness import ADMIN_PASSWORD, BrowserClient, running_mackuper
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
        page, watch = ui(mackuper.url)
        # The wizard's destination form sets the lock mode, and Test connection reports it.
        page.goto("/setup")
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
        page.get_by_label("Repeat the password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Create administrator").click()
        fill_s3_destination(page, moto_s3, bucket, moto_s3.endpoint_url)
        page.get_by_label(re.compile("^Object Lock")).select_option("GOVERNANCE")
        page.get_by_role("button", name="Test connection").click()
        expect(page.locator("#dest-lock-days").locator("xpath=..")).to_contain_text(
            "Enter the days each backup stays locked at least."
        )
        page.get_by_label("Days each backup stays locked at least").fill("3")
        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_role("status")).to_contain_text("Object Lock: on, no default retention.")
        page.get_by_role("button", name="Save and finish").click()
        expect(page).to_have_url(re.compile("/jobs"))
        client = BrowserClient(mackuper.url)
        client.login()
        (destination,) = client.ok("GET", "/api/destinations")["destinations"]
        assert (destination["config"]["object_lock_mode"], destination["config"]["lock_days"]) == (
            "GOVERNANCE",
            3,
        )
        job = client.create_job("Locked job", source, destination["id"], retention={"keep_last": 1})
        runs = [
            client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
            for _ in range(2)
        ]
        assert [run["status"] for run in runs] == ["success", "success"]

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
