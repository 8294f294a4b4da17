"""The next run of a job waits for the previous run's post-command and retention.

A run's status is written as soon as its work ends (the page shows it at once); its
post-command, alerts and retention follow. A queued run of the same job used to be
claimed in that gap, by the next poll of any worker, so its pre-command ran beside
the previous post-command: with "stop the app" before and "start it" after, the app
could be started again in the middle of the next backup.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_scale_out import tiny_tree, wait_for
from tests.harness import BrowserClient, running_mackuper
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e


def test_a_queued_run_starts_only_after_the_previous_runs_post_command(tmp_path: Path) -> None:
    source = tiny_tree(tmp_path / "source")
    expected = file_hashes(source)
    backups = tmp_path / "backups"
    trace = tmp_path / "trace"
    stamp = 'echo "{what} $MACKUPER_RUN_ID $(date +%s.%N)" >> ' + str(trace)
    with running_mackuper(tmp_path / "data") as server:
        browser = BrowserClient(server.url)
        disk = browser.complete_setup({"name": "Disk", "kind": "local", "path": str(backups)})
        job = browser.create_job("Settle", source, disk["id"], archive_format="tar.zst")
        hooks = {
            "pre": {"command": stamp.format(what="pre"), "timeout": 30, "on_failure": "abort"},
            "post": {
                # Long enough for several polls (0.2 s) of the worker in between.
                "command": "sleep 2; " + stamp.format(what="post"),
                "timeout": 30,
                "on_failure": "warn",
            },
        }
        browser.ok("PUT", f"/api/jobs/{job['id']}/alerts", {"hooks": hooks})
        runs = [
            browser.ok("POST", f"/api/jobs/{job['id']}/run", {"another": True})["run"]["id"]
            for _ in range(2)
        ]
        for run_id in runs:
            assert browser.wait_run(run_id, timeout=120)["status"] == "success"
        # Each run's status is written before its post-command: wait for both of those.
        wait_for(lambda: trace.read_text().count("post ") == 2, 60, "both post-commands")

    lines = [line.split() for line in trace.read_text().splitlines()]
    at = {(what, int(run)): float(when) for what, run, when in lines}
    first, second = runs
    assert at["pre", second] >= at["post", first], lines
    archives = sorted(backups.rglob("*.tar.zst"))
    assert len(archives) == 2, archives
    for index, archive in enumerate(archives):
        out = tmp_path / f"out{index}"
        out.mkdir()
        subprocess.run(["tar", "-I", "zstd", "-xf", str(archive), "-C", str(out)], check=True)  # noqa: S603, S607
        assert file_hashes(out / str(source).lstrip("/")) == expected
