"""The dashboard's "Running now" shows the transfer rate of a running backup, not the
success rate (issue 15, item 5: a page-level rateText() shadowed the shared one)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in
from tests.e2e.test_scale_out import tiny_tree
from tests.harness import BrowserClient, running_mackuper

pytestmark = pytest.mark.e2e


def test_running_now_shows_the_transfer_rate_and_the_card_the_success_rate(
    tmp_path: Path, ui: Any
) -> None:
    with running_mackuper(tmp_path / "data") as server:
        client = BrowserClient(server.url)
        disk = client.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "backups")}
        )
        job = client.create_job("Documents", tiny_tree(tmp_path / "source"), disk["id"])
        done = client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
        assert client.wait_run(done["id"])["status"] == "success"  # success rate: 100 %
        client.ok(
            "PUT",
            f"/api/jobs/{job['id']}/alerts",
            {"hooks": {"pre": {"command": "sleep 20", "timeout": 60, "on_failure": "abort"}}},
        )
        running = client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
        client.wait_status(running["id"], {"running"})

        page, watch = ui(server.url)
        log_in(page)
        page.goto("/")
        section = page.get_by_role("region", name="Running backups")
        expect(section).to_contain_text("Documents")
        expect(section).to_contain_text(re.compile(r"files, [\d.]+ (B|KiB|MiB|GiB)/s"))
        expect(section).not_to_contain_text("%")
        expect(page.get_by_text("Success rate").locator("..")).to_contain_text("100 %")
        watch.assert_clean()
        client.ok("POST", f"/api/runs/{running['id']}/cancel")
