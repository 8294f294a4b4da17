"""Status you can trust, in Chromium (issue 15, items 1, 2, 10, 11, 12 and 13's Run now):
a job whose last backup failed shows failed on Jobs and in "Needs attention" even
after a good verification; every run says its kind; History keeps its filters in the
address; times are shown in one labelled zone; three clicks on Run now make one
backup."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e import browser
from tests.e2e.browser import PageWatch
from tests.harness import BrowserClient, running_mackuper
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.e2e

FAILING_BACKUPS = {
    "hooks": {
        "pre": {
            # Backups fail (as when a dump before them breaks); verifications still run.
            "command": 'test "$MACKUPER_KIND" != backup',
            "timeout": 30,
            "on_failure": "abort",
        }
    }
}


@dataclass
class Seeded:
    url: str
    session: Any
    client: BrowserClient
    good: dict[str, Any]
    failed: dict[str, Any]
    verified: dict[str, Any]
    restored: dict[str, Any]
    stranded_job: dict[str, Any]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, chromium: Browser) -> Iterator[Seeded]:
    """A good backup of "Documents", then a failed one, then a good verification of the
    first and a dry-run restore; a job only an absent worker may run; a job in Tokyo."""
    root = tmp_path_factory.mktemp("ui-status")
    source = make_small_tree(root / "source")
    with running_mackuper(root / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        disk = client.complete_setup({"name": "Disk", "kind": "local", "path": str(root / "store")})
        job = client.create_job("Documents", source, disk["id"])
        good = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
        assert good["status"] == "success", good
        (artifact,) = good["artifacts"]
        out = root / "out"
        out.mkdir()
        subprocess.run(
            ["tar", "-xzf", str(root / "store" / artifact["key"]), "-C", str(out)], check=True
        )
        assert file_hashes(out / source.relative_to("/")) == file_hashes(source)

        client.ok("PUT", f"/api/jobs/{job['id']}/alerts", FAILING_BACKUPS)
        failed = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
        assert failed["status"] == "failed", failed
        verify = client.ok("POST", "/api/verify", {"artifact_id": artifact["id"]})["run"]
        verified = client.wait_run(verify["id"])
        assert verified["status"] == "success", verified
        target = {"kind": "local", "path": str(root / "restore-target")}
        restore = client.ok(
            "POST",
            "/api/restore",
            {"artifact_id": artifact["id"], "target": target, "dry_run": True},
        )["run"]
        restored = client.wait_run(restore["id"])
        assert restored["status"] == "success", restored
        stranded = client.create_job("Elsewhere", source, disk["id"], worker_label="elsewhere")
        client.create_job("Tokyo", source, disk["id"], schedule="0 2 * * *", timezone="Asia/Tokyo")

        context = chromium.new_context(base_url=mackuper.url)
        page = context.new_page()
        browser.log_in(page)
        session = context.storage_state()
        context.close()
        yield Seeded(mackuper.url, session, client, good, failed, verified, restored, stranded)


def log_in(ui: Any, seeded: Seeded, **options: Any) -> tuple[Page, PageWatch]:
    page, watch = ui(seeded.url, storage_state=seeded.session, **options)
    return page, watch


def test_a_failed_backup_then_a_good_verify_shows_failed_on_jobs_and_in_needs_attention(
    seeded: Seeded, ui: Any
) -> None:
    page, watch = log_in(ui, seeded)
    page.goto("/jobs")
    row = page.get_by_role("row").filter(has_text="Documents")
    last_backup = row.get_by_role("link", name=re.compile(r"^(success|warning|failed)$"))
    expect(last_backup).to_have_text("failed")
    expect(last_backup).to_have_attribute("href", f"/runs/{seeded.failed['id']}")

    page.goto("/")
    headline = page.get_by_test_id("headline")
    expect(headline).to_have_text("1 thing needs attention")
    expect(headline).to_have_css("color", "oklch(0.505 0.213 27.518)")  # Tailwind red-700
    (item,) = page.get_by_role("list", name="Needs attention").get_by_role("listitem").all()
    expect(item).to_contain_text("Backup failed")
    expect(item).to_contain_text("Documents")
    expect(item).to_contain_text("pre-backup command")
    expect(item.get_by_role("link", name="Backup failed")).to_have_attribute(
        "href", f"/runs/{seeded.failed['id']}"
    )
    kinds = page.get_by_role("region", name="Recent activity").get_by_test_id("run-kind")
    expect(kinds).to_have_text(["Restore (dry run)", "Verify", "Backup", "Backup"])
    watch.assert_clean()


def test_history_shows_kind_and_error_and_keeps_its_filters_in_the_address(
    seeded: Seeded, ui: Any
) -> None:
    page, watch = log_in(ui, seeded)
    page.goto("/history")
    table = page.get_by_role("table")
    expect(table.get_by_role("columnheader")).to_contain_text(["Kind", "Error"])
    failed_row = table.get_by_role("row").filter(has_text=f"#{seeded.failed['id']}")
    expect(failed_row.get_by_test_id("run-kind")).to_contain_text("Backup")
    expect(failed_row.get_by_test_id("run-error")).to_contain_text("pre-backup command")

    page.get_by_label("Kind").select_option("verify")
    expect(page).to_have_url(re.compile(r"/history\?kind=verify$"))
    expect(table.get_by_test_id("run-kind")).to_have_text(["Verify"])
    page.reload()
    expect(page.get_by_label("Kind")).to_have_value("verify")
    expect(table.get_by_test_id("run-kind")).to_have_text(["Verify"])

    page.get_by_label("Status").select_option("failed")
    expect(page).to_have_url(re.compile(r"kind=verify&status=failed"))
    expect(page.get_by_text("No runs match.")).to_be_visible()
    page.go_back()
    expect(page.get_by_label("Status")).to_have_value("")
    expect(table.get_by_test_id("run-kind")).to_have_text(["Verify"])
    page.go_back()
    expect(page.get_by_label("Kind")).to_have_value("")
    expect(table.get_by_test_id("run-kind")).to_have_count(4)

    today = datetime.now(UTC).date()  # the installation's zone is UTC here
    page.get_by_label("From").fill((today + timedelta(days=1)).isoformat())
    expect(page.get_by_text("No runs match.")).to_be_visible()
    page.get_by_label("From").fill(today.isoformat())
    page.get_by_label("To").fill(today.isoformat())
    expect(table.get_by_test_id("run-kind")).to_have_count(4)
    expect(page).to_have_url(re.compile(rf"from_date={today}&to_date={today}"))
    watch.assert_clean()


def test_a_verify_or_restore_page_shows_what_fits_its_kind(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    page.goto(f"/runs/{seeded.verified['id']}")
    expect(page.get_by_test_id("run-kind")).to_have_text("Verify")
    facts = page.get_by_test_id("run-facts")
    expect(facts).to_contain_text("Archive verified")
    expect(facts).to_contain_text(seeded.verified["archive_name"])
    expect(facts).to_contain_text("the archive's BLAKE3")
    expect(facts).to_contain_text(f"BLAKE3 (b3sum){seeded.good['blake3']}")
    expect(facts).not_to_contain_text("Archive size")
    expect(facts).not_to_contain_text("Files")

    page.goto(f"/runs/{seeded.restored['id']}")
    expect(page.get_by_test_id("run-kind")).to_have_text("Restore (dry run)")
    facts = page.get_by_test_id("run-facts")
    expect(facts).to_contain_text("restore-target")
    expect(facts).to_contain_text(re.compile(r"Would restore\s*\d+ files"))
    expect(facts).not_to_contain_text("Archive size")

    page.goto(f"/runs/{seeded.good['id']}")
    expect(page.get_by_test_id("run-kind")).to_have_text("Backup")
    facts = page.get_by_test_id("run-facts")
    expect(facts).to_contain_text("Archive size")
    assert re.fullmatch("[0-9a-f]{64}", seeded.good["blake3"]) and seeded.good["sha256"] is None
    expect(facts).to_contain_text(f"BLAKE3 (b3sum){seeded.good['blake3']}")
    watch.assert_clean()


def test_times_are_shown_in_the_installation_or_job_zone_not_the_browsers(
    seeded: Seeded, ui: Any
) -> None:
    page, watch = log_in(ui, seeded, timezone_id="America/New_York", locale="en-GB")
    page.goto("/jobs")
    page.get_by_role("row").filter(has_text="Tokyo").get_by_role("button", name="Edit").click()
    preview = page.get_by_role("list", name="Next runs").get_by_role("listitem")
    expect(preview).to_have_count(5)
    for item in preview.all():  # 02:00 in Tokyo, not 12:00 or 13:00 in New York
        expect(item).to_have_text(re.compile(r"02:00:00 GMT\+9$"))

    page.goto(f"/runs/{seeded.good['id']}")
    first_line = page.get_by_role("list", name="Log").get_by_role("listitem").first
    expect(first_line).to_contain_text(re.compile(r"\d\d:\d\d:\d\d UTC "))
    watch.assert_clean()


def test_three_clicks_on_run_now_queue_one_backup_and_a_fourth_says_so(
    seeded: Seeded, ui: Any
) -> None:
    job = seeded.stranded_job
    page, watch = log_in(ui, seeded)
    page.goto("/jobs")
    button = (
        page.get_by_role("row").filter(has_text="Elsewhere").get_by_role("button", name="Run now")
    )
    button.evaluate("button => { button.click(); button.click(); button.click(); }")
    expect(page).to_have_url(re.compile(r"/runs/\d+"))
    runs = seeded.client.ok("GET", f"/api/runs?job_id={job['id']}")["runs"]
    assert [run["status"] for run in runs] == ["queued"], runs

    page.goto("/jobs")
    page.get_by_role("row").filter(has_text="Elsewhere").get_by_role(
        "button", name="Run now"
    ).click()
    expect(page).to_have_url(re.compile(rf"/runs/{runs[0]['id']}\?existing=1$"))
    expect(page.get_by_test_id("run-existing")).to_contain_text(
        "already queued: this is it; Run now did not queue a second one"
    )
    assert len(seeded.client.ok("GET", f"/api/runs?job_id={job['id']}")["runs"]) == 1
    watch.assert_clean()
    seeded.client.ok("POST", f"/api/runs/{runs[0]['id']}/cancel")
