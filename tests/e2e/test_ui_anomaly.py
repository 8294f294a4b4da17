"""Issue 19, item 4 (anomaly part): after a simulated ransomware run the Jobs page names
the backup and what changed, and a person's Acknowledge lets retention delete again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.test_ui_keys import log_in
from tests.harness import BrowserClient, running_mackuper
from tests.integration.test_backup_anomaly import write_corpus

pytestmark = pytest.mark.e2e


def test_the_jobs_page_shows_a_ransomware_like_backup_until_acknowledged(
    tmp_path: Path, ui: Any
) -> None:
    source = tmp_path / "documents"
    write_corpus(source)
    with running_mackuper(tmp_path / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        destination = client.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "storage")}
        )
        job = client.create_job("Office", source, destination["id"], retention={"keep_last": 1})

        def back_up() -> dict[str, Any]:
            return client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])

        assert back_up()["status"] == "success"
        for path in source.rglob("*.txt"):
            path.write_bytes(os.urandom(path.stat().st_size))
        hit = back_up()
        assert hit["status"] == "warning"

        page, watch = ui(mackuper.url)
        log_in(page)
        page.goto("/jobs")
        notices = page.get_by_role("region", name="Backups that look like ransomware")
        notice = notices.get_by_role("alert").first
        expect(notice).to_contain_text(f"Office: backup run {hit['id']} does not look like")
        expect(notice).to_contain_text("Retention deletes nothing for this job")
        expect(notice).to_contain_text("files changed: about 100% of the files kept")
        expect(notice).to_contain_text("compression ratio jumped")

        notice.get_by_role("button", name="Acknowledge: the files are as they should be").click()
        expect(notices).to_be_hidden()
        assert client.ok("GET", f"/api/jobs/{job['id']}/anomaly")["anomaly"]["run_id"] is None
        page.reload()
        expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
        expect(notices).to_be_hidden()
        watch.assert_clean()
