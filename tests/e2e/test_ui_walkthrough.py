"""A new user's first session in headless Chromium, from the wizard to deleting the job.

Every page is checked for console errors, uncaught exceptions and CSP violations.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import PageWatch, run_axe
from tests.e2e.slowlink import slow_link
from tests.harness import ADMIN_PASSWORD, running_mackuper
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name

pytestmark = pytest.mark.e2e

# The backup's upload goes through a 1 MiB/s link, so the run lasts a few seconds.
UPLINK_BYTES_PER_SECOND = 1024 * 1024


@pytest.fixture
def moto_bucket(moto_s3: S3Server) -> Iterator[str]:
    moto_s3.start()
    bucket = moto_s3.make_bucket(unique_bucket_name())
    yield bucket
    remove_bucket(moto_s3, bucket)


def photo_tree(root: Path) -> Path:
    """4 MiB of incompressible data: a few seconds over the slow link below."""
    (root / "photos").mkdir(parents=True)
    for index in range(4):
        (root / "photos" / f"img_{index}.raw").write_bytes(os.urandom(1024 * 1024))
    (root / "notes.txt").write_text("remember the milk\n")
    return root


def visit(page: Page, watch: PageWatch, path: str) -> None:
    watch.assert_clean()
    page.goto(path)
    page.wait_for_load_state("networkidle")
    watch.assert_clean()


def assert_accessible(page: Page, where: str) -> None:
    """The wizard exists only before setup, so axe checks it here (other pages: test_ui_pages)."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.wait_for_timeout(400)
        assert run_axe(page) == [], f"{where} ({scheme})"
    page.emulate_media(color_scheme="light")


def fill_s3_destination(page: Page, server: S3Server, bucket: str, endpoint: str) -> None:
    page.locator("#dest-name").fill("Main storage")
    page.locator("#dest-kind").select_option("s3")
    page.locator("#dest-bucket").fill(bucket)
    page.locator("#dest-region").fill(server.region)
    page.locator("#dest-access").fill(server.access_key)
    page.locator("#dest-secret").fill(server.secret_key)
    page.locator("#dest-endpoint").fill(endpoint)
    page.get_by_label(re.compile("Path-style addressing")).check()


def field_message(page: Page, field_id: str) -> Any:
    """The error message in the same form group as the field."""
    return page.locator(f"#{field_id}").locator("xpath=..").locator(".field-error").first


def test_new_user_sets_up_backs_up_watches_progress_and_manages_the_job(
    tmp_path: Path, moto_s3: S3Server, moto_bucket: str, ui: Any
) -> None:
    source = photo_tree(tmp_path / "source")
    with (
        slow_link(moto_s3.endpoint_url, UPLINK_BYTES_PER_SECOND) as endpoint,
        running_mackuper(tmp_path / "data") as mackuper,
    ):
        page, watch = ui(mackuper.url)

        # 1. The wizard: an administrator, then a destination tested before it is saved.
        visit(page, watch, "/")
        expect(page).to_have_url(re.compile("/setup$"))
        assert_accessible(page, "setup, step 1")
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
        page.get_by_label("Repeat the password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Create administrator").click()
        expect(page.locator("#dest-bucket")).to_be_visible()
        assert_accessible(page, "setup, step 2")
        watch.assert_clean()
        fill_s3_destination(page, moto_s3, moto_bucket, endpoint)
        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_role("status")).to_contain_text("Connected")
        page.get_by_role("button", name="Save and finish").click()
        expect(page).to_have_url(re.compile("/jobs"))
        page.wait_for_load_state("networkidle")
        watch.assert_clean()

        # 2. A job: first wrong, with messages next to the fields, then right.
        page.get_by_role("button", name="New job").click()
        page.locator("#job-name").fill("")
        page.locator("#job-paths").fill("relative/path")
        page.locator("#job-schedule").fill("61 * * * *")
        page.get_by_role("button", name="Save job").click()
        expect(field_message(page, "job-name")).to_have_text("Give the job a name.")
        expect(field_message(page, "job-paths")).to_contain_text("absolute")
        expect(field_message(page, "job-schedule")).to_be_visible()
        expect(page.locator("#job-name")).to_have_attribute("aria-invalid", "true")
        page.locator("#job-name").fill("Family photos")
        page.locator("#job-paths").fill(str(source))
        page.locator("#job-schedule").fill("")
        page.get_by_role("button", name="Daily 02:00").click()
        expect(page.get_by_role("list", name="Next runs").locator("li")).to_have_count(5)
        page.locator("#job-format").select_option("tar.gz")
        page.get_by_role("button", name="Save job").click()
        row = page.get_by_role("row").filter(has_text="Family photos")
        expect(row).to_be_visible()
        expect(row).to_contain_text("02:00")
        watch.assert_clean()

        # 3. Run it and watch it go.
        row.get_by_role("button", name="Run now").click()
        expect(page).to_have_url(re.compile(r"/runs/\d+$"))
        progress = page.get_by_role("progressbar", name="Backup progress")
        expect(progress).to_be_visible(timeout=30_000)
        expect(page.get_by_test_id("run-status")).to_have_text("running")
        expect(page.get_by_test_id("run-rate")).to_contain_text(re.compile(r"/s"))
        expect(page.get_by_test_id("run-status")).to_have_text("success", timeout=90_000)
        expect(progress).to_be_hidden()
        expect(page.get_by_role("list", name="Log")).to_contain_text("finished: success")
        watch.assert_clean()

        # 4. History lists the success; its link opens the run with its log.
        visit(page, watch, "/history")
        history_row = page.get_by_role("row").filter(has_text="Family photos")
        expect(history_row).to_have_count(1)
        expect(history_row.locator(".badge")).to_have_text("success")
        expect(history_row).to_contain_text("MiB")
        history_row.get_by_role("link").first.click()
        expect(page).to_have_url(re.compile(r"/runs/\d+$"))
        expect(page.get_by_role("list", name="Log").locator("li").first).to_be_visible()
        watch.assert_clean()

        # The dashboard shows the backup among the recent activity.
        visit(page, watch, "/")
        expect(page.get_by_test_id("scheduler-status")).to_have_text("Scheduler running")
        expect(page.get_by_role("region", name="Recent activity")).to_contain_text("Family photos")
        expect(page.get_by_role("img", name=re.compile("Backup size"))).to_be_visible()
        visit(page, watch, "/settings")
        expect(page.get_by_role("row").filter(has_text="Main storage")).to_be_visible()

        # 5. Edit, disable, delete.
        visit(page, watch, "/jobs")
        page.get_by_role("row").filter(has_text="Family photos").get_by_role(
            "button", name="Edit"
        ).click()
        expect(page.locator("#job-name")).to_have_value("Family photos")
        page.locator("#job-name").fill("Family photos and notes")
        page.get_by_role("button", name="Save job").click()
        row = page.get_by_role("row").filter(has_text="Family photos and notes")
        expect(row).to_be_visible()
        row.get_by_role("button", name="Disable").click()
        expect(row.get_by_role("button", name="Enable")).to_be_visible()
        expect(row).to_contain_text("Disabled")
        row.get_by_role("button", name="Delete").click()
        dialog = page.get_by_role("alertdialog")
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Delete job").click()
        expect(page.get_by_role("row").filter(has_text="Family photos")).to_have_count(0)
        expect(page.get_by_text("No jobs yet")).to_be_visible()
        time.sleep(0.2)
        watch.assert_clean()
