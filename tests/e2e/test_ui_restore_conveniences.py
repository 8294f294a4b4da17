"""Issue 15, item 14: restore to the original location (with skip / overwrite), modified
times in the file browser, a clear scope while searching, and a paged list of backups
grouped by job. Restored files are compared with the source by content hashes."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_ui_keys import log_in
from tests.harness import BrowserClient, running_mackuper
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.e2e

TINY_BACKUPS = 20


def start_restore(page: Page, client: BrowserClient) -> dict[str, Any]:
    page.get_by_role("button", name="Start restore").click()
    page.wait_for_url("**/runs/*")
    run = client.wait_run(int(page.url.rsplit("/", 1)[-1]))
    assert (run["kind"], run["status"]) == ("restore", "success"), run["error"]
    return run


def test_restore_page_pages_groups_shows_times_scopes_search_and_restores_in_place(
    tmp_path: Path, ui: Any
) -> None:
    source = make_small_tree(tmp_path / "source")
    original = file_hashes(source)
    readme = source / "docs" / "readme.txt"
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "one.txt").write_text("one\n")
    with running_mackuper(tmp_path / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        destination = client.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "storage")}
        )
        home = client.create_job("Home files", source, destination["id"], archive_format="tar.gz")
        small = client.create_job("Tiny", tiny, destination["id"], archive_format="tar")
        for job in [home] + [small] * TINY_BACKUPS:
            run = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
            assert run["status"] == "success", run["error"]

        page, watch = ui(mackuper.url)
        log_in(page)
        page.goto("/restore")
        pages = page.get_by_role("navigation", name="Backup pages")
        expect(pages).to_contain_text(f"Page 1 of 2 · {TINY_BACKUPS + 1} backups")
        groups = page.get_by_role("columnheader", name=re.compile("on this page"))
        expect(groups).to_have_text(
            ["Home files · 1 backup on this page", "Tiny · 19 backups on this page"]
        )
        pages.get_by_role("button", name="Older").click()
        expect(pages).to_contain_text("Page 2 of 2")
        expect(groups).to_have_text(["Tiny · 1 backup on this page"])
        pages.get_by_role("button", name="Newer").click()

        page.get_by_role("row").filter(has_text="Home files").get_by_role(
            "button", name="Browse"
        ).click()
        page.get_by_placeholder("Search by name").fill("readme")
        page.get_by_role("button", name="Search").click()
        entry = page.get_by_role("listitem").filter(has_text="readme.txt").first
        shown = entry.locator("time").get_attribute("datetime")
        assert shown is not None
        assert abs(datetime.fromisoformat(shown).timestamp() - readme.stat().st_mtime) < 1
        restore_form = page.get_by_role("form", name="Restore")
        expect(restore_form.get_by_role("heading")).to_have_text("Restore from the search results")
        expect(page.get_by_role("button", name="Start restore")).to_be_disabled()
        page.get_by_role("button", name="Clear search").click()
        expect(restore_form.get_by_role("heading")).to_have_text(
            "Restore everything in this backup"
        )

        # Put everything back where it came from: "skip" brings back what was deleted and
        # keeps what changed; "overwrite" then restores the changed file too.
        readme.write_text("changed since the backup\n")
        (source / "name with spaces é.txt").unlink()
        page.locator("#restore-kind").select_option("original")
        expect(restore_form).to_contain_text("back to the paths they were backed up from")
        expect(page.get_by_label("Directory (absolute path)")).to_be_hidden()
        start_restore(page, client)
        after_skip = file_hashes(source)
        assert after_skip["name with spaces é.txt"] == original["name with spaces é.txt"]
        assert readme.read_text() == "changed since the backup\n"

        page.goto("/restore")
        page.get_by_role("row").filter(has_text="Home files").get_by_role(
            "button", name="Browse"
        ).click()
        page.locator("#restore-kind").select_option("original")
        page.locator("#restore-policy").select_option("overwrite")
        start_restore(page, client)
        watch.assert_clean()

    assert file_hashes(source) == original
