"""In the browser: the job form offers the live workers' labels and picks the only
worker's; a queued run's page says where it stands and which label it waits for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in
from tests.e2e.test_scale_out import tiny_tree, wait_for
from tests.harness import BrowserClient, running_mackuper

pytestmark = pytest.mark.e2e


def test_the_job_form_picks_the_only_workers_label_and_a_stranded_run_says_why(
    tmp_path: Path, ui: Any
) -> None:
    source = tiny_tree(tmp_path / "source")
    with running_mackuper(tmp_path / "data", {"MACKUPER_WORKER_LABELS": "nas-1"}) as server:
        client = BrowserClient(server.url)
        disk = client.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "backups")}
        )
        wait_for(lambda: client.ok("GET", "/api/ui/workers")["labels"] == ["nas-1"], 60, "worker")
        page, watch = ui(server.url)
        log_in(page)

        page.goto("/jobs?new=1")
        run_on = page.get_by_label("Run on")
        expect(run_on).to_have_value("nas-1")
        page.get_by_label("Name").fill("Photos")
        page.get_by_label("Paths to back up").fill(str(source))
        page.get_by_role("button", name="Save job").click()
        expect(page.get_by_text("Job saved.")).to_be_visible()
        (job,) = client.ok("GET", "/api/jobs")["jobs"]
        assert job["worker_label"] == "nas-1"

        stranded = client.create_job("Elsewhere", source, disk["id"], worker_label="office")
        run = client.ok("POST", f"/api/jobs/{stranded['id']}/run")["run"]
        page.goto(f"/runs/{run['id']}")
        expect(page.get_by_test_id("run-waiting-for")).to_contain_text(
            "Waiting for a worker labelled 'office'"
        )
        expect(page.get_by_test_id("run-queue-position")).to_have_text(
            "Queued: next to start among the backups."
        )
        watch.assert_clean()
