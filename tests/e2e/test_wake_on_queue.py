"""A run queued through the web starts without waiting for the worker's poll.

The worker here polls once a minute (MACKUPER_WORKER_POLL_SECONDS=60), so every
run below would sit queued for up to a minute if queuing did not wake it: a
backup from "Run now", the next backup queued while the first runs (woken by the
first one's end), and a restore.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_scale_out import tiny_tree
from tests.harness import BrowserClient, running_mackuper
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e

PROMPT = 30.0
"""Far under the 60 s poll, far over a loaded machine's wake-up."""


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_queued_runs_start_before_the_next_poll(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    env = {"MACKUPER_WORKER_POLL_SECONDS": "60", "MACKUPER_MAX_CONCURRENT_RUNS": "1"}
    if database == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("empty_postgres_url")
    source = tiny_tree(tmp_path / "source")
    target = tmp_path / "restored"
    with running_mackuper(tmp_path / "data", env) as server:
        browser = BrowserClient(server.url)
        disk = browser.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "backups")}
        )
        job = browser.create_job("Documents", source, disk["id"])
        first = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
        first = browser.wait_run(first["id"], timeout=PROMPT)
        assert first["status"] == "success", first

        other = browser.create_job("Other", tiny_tree(tmp_path / "other"), disk["id"])
        browser.ok(
            "PUT",
            f"/api/jobs/{other['id']}/alerts",
            {"hooks": {"pre": {"command": "sleep 2", "timeout": 30, "on_failure": "abort"}}},
        )
        slow = browser.ok("POST", f"/api/jobs/{other['id']}/run")["run"]
        behind = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
        assert browser.wait_run(slow["id"], timeout=PROMPT)["status"] == "success"
        assert browser.wait_run(behind["id"], timeout=PROMPT)["status"] == "success"

        (artifact,) = first["artifacts"]
        restore = browser.ok(
            "POST",
            "/api/restore",
            {"artifact_id": artifact["id"], "target": {"kind": "local", "path": str(target)}},
        )["run"]
        assert browser.wait_run(restore["id"], timeout=PROMPT)["status"] == "success"
    assert file_hashes(target / str(source).lstrip("/")) == file_hashes(source)
