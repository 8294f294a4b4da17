"""A restore does not wait behind queued backups: with one backup at a time
(MACKUPER_MAX_CONCURRENT_RUNS=1) and twenty slow backups queued, a restore asked
for after them starts before every backup still queued, and each queued run says
where it stands in line, on its run page too.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in
from tests.e2e.test_scale_out import tiny_tree
from tests.harness import BrowserClient, running_mackuper
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e

BACKUPS = 20


def _at(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def test_a_restore_starts_before_the_backups_queued_ahead_of_it(tmp_path: Path, ui: Any) -> None:
    source = tiny_tree(tmp_path / "source")
    target = tmp_path / "restored"
    with running_mackuper(tmp_path / "data", {"MACKUPER_MAX_CONCURRENT_RUNS": "1"}) as server:
        browser = BrowserClient(server.url)
        disk = browser.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "backups")}
        )
        documents = browser.create_job("Documents", source, disk["id"])
        first = browser.ok("POST", f"/api/jobs/{documents['id']}/run")["run"]
        (artifact,) = browser.wait_run(first["id"])["artifacts"]

        slow = browser.create_job("Slow", tiny_tree(tmp_path / "slow-source"), disk["id"])
        browser.ok(
            "PUT",
            f"/api/jobs/{slow['id']}/alerts",
            {"hooks": {"pre": {"command": "sleep 0.5", "timeout": 30, "on_failure": "abort"}}},
        )
        again = {"another": True}  # queue them all, though one is already waiting
        backups = [
            browser.ok("POST", f"/api/jobs/{slow['id']}/run", again)["run"] for _ in range(BACKUPS)
        ]
        restore = browser.ok(
            "POST",
            "/api/restore",
            {"artifact_id": artifact["id"], "target": {"kind": "local", "path": str(target)}},
        )["run"]
        # The restore has a lane of its own; the last backup is far back in its line.
        assert restore["queue_position"] in (1, None), restore
        last = browser.ok("GET", f"/api/runs/{backups[-1]['id']}")["run"]
        assert last["status"] == "queued" and last["queue_position"] >= BACKUPS // 2, last
        # The run page says where a queued run stands, in its lane.
        page, watch = ui(server.url)
        log_in(page)
        page.goto(f"/runs/{backups[-1]['id']}")
        expect(page.get_by_test_id("run-queue-position")).to_have_text(
            re.compile(r"Queued: number \d+ in line among the backups\.")
        )
        watch.assert_clean()

        restored = browser.wait_run(restore["id"], timeout=120)
        finished = [browser.wait_run(run["id"], timeout=240) for run in backups]

    assert restored["status"] == "success", restored
    assert [run["status"] for run in finished] == ["success"] * BACKUPS, finished
    asked = _at(restore["created_at"])
    # Backups that started after the restore was asked for were queued ahead of it.
    queued_ahead = [run for run in finished if _at(run["started_at"]) > asked]
    assert len(queued_ahead) >= BACKUPS // 2, "the backups went too fast to queue up"
    started = _at(restored["started_at"])
    assert all(started < _at(run["started_at"]) for run in queued_ahead), (
        started,
        [run["started_at"] for run in queued_ahead],
    )
    assert file_hashes(target / str(source).lstrip("/")) == file_hashes(source)
