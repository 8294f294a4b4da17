"""Issue 17, retention preview: the job form's preview shows incremental chains, which
point builds on which full, and what is kept only because a kept point needs it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from mackuper.destinations import registry
from tests.e2e.browser import log_in
from tests.harness import BrowserClient, running_mackuper
from tests.integration.chain_support import HandChain
from tests.trees import make_small_tree

pytestmark = pytest.mark.e2e


def test_the_retention_preview_shows_chains(tmp_path: Path, ui: Any) -> None:
    source = make_small_tree(tmp_path / "source")
    storage = tmp_path / "storage"
    storage.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    now = datetime.now(UTC).replace(microsecond=0)
    chain = HandChain(
        registry.build("local", {"path": str(storage)}, {}), work, source, "documents", "Documents"
    )
    full = chain.store(now - timedelta(hours=3), full=True)
    (source / "docs" / "readme.txt").write_text("changed\n")
    newest = chain.store(now - timedelta(hours=2))
    with running_mackuper(tmp_path / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        destination = client.complete_setup({"name": "Disk", "kind": "local", "path": str(storage)})
        report = client.ok("POST", "/api/import", {"destination_id": destination["id"]})["report"]
        assert report["chain_points"] == 2, report
        runs = {item["key"]: item["run_id"] for item in client.ok("GET", "/api/backups")["backups"]}

        page, watch = ui(mackuper.url)
        log_in(page)
        page.goto("/jobs")
        page.get_by_role("row").filter(has_text="Documents").get_by_role(
            "button", name="Edit"
        ).click()
        page.get_by_label("Keep the last").fill("1")
        page.get_by_role("button", name="Preview retention").click()
        preview = page.get_by_role("list", name="Retention preview")
        items = preview.get_by_role("listitem")
        expect(items).to_have_count(2)
        full_run, newest_run = runs[full.key], runs[newest.key]
        expect(items.nth(0)).to_contain_text(
            re.compile(
                rf"^Run {newest_run}, .* \(incremental 1 on the full of run {full_run}\): keep \("
            )
        )
        expect(items.nth(1)).to_contain_text(
            f"(full, start of a chain): keep only because a kept point needs it (needed by run"
            f" {newest_run})"
        )
        expect(page.get_by_role("status").filter(has_text="would be deleted")).to_contain_text(
            "0 would be deleted, 2 kept."
        )
        watch.assert_clean()
