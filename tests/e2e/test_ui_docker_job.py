"""Containers with mackuper.* labels proposed as a job, in Chromium (issue 18,
Done-when 5), on podman's Docker-compatible API.

Settings: the engine's address is saved and "Test connection" shows the engine and
its counts. Jobs: the stack whose containers carry
`mackuper.stop-during-backup=<slug>` (db mounting a volume) is proposed; "Create job"
fills in the form (volume source, the containers to stop); saved and run, the backup
stops and starts the three containers and GNU tar extracts the volume's files.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in, run_axe
from tests.harness import BrowserClient, running_mackuper
from tests.integration.docker_support import running_stack, state, volume_with
from tests.servers.podman import PodmanEngine
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.e2e


def test_labelled_containers_are_proposed_as_a_job_that_is_created_and_runs(
    podman_engine: PodmanEngine, ui: Any, tmp_path: Path
) -> None:
    tree = make_small_tree(tmp_path / "tree")
    volume = volume_with(podman_engine, tree)
    with (
        running_stack(podman_engine, volume) as stack,
        running_mackuper(tmp_path / "data") as mackuper,
    ):
        client = BrowserClient(mackuper.url)
        client.complete_setup({"name": "Disk", "kind": "local", "path": str(tmp_path / "store")})
        page, watch = ui(mackuper.url)
        page.set_default_timeout(60_000)  # logging in hashes a password: slow on a busy machine
        log_in(page, timeout=60_000)

        page.goto("/settings")
        # the saved settings have loaded (the default address shows) before typing
        expect(page.locator("label[for=engine-address]")).to_contain_text("unix://")
        page.locator("#engine-address").fill(podman_engine.url)
        page.get_by_role("button", name="Test engine connection").click()
        result = page.get_by_test_id("engine-result")
        expect(result).to_contain_text("Connected to ", timeout=30_000)
        expect(result).to_contain_text("containers (")
        page.locator("#engine-address").press("Enter")
        expect(page.get_by_text("Saved.")).to_be_visible()
        assert client.ok("GET", "/api/containers/engine")["address"] == podman_engine.url
        listed = page.get_by_test_id("engine-containers")
        db_row = listed.locator("tr").filter(has_text=stack.names["db"])
        expect(db_row).to_contain_text(f"mackuper.stop-during-backup={stack.slug}")
        expect(db_row).to_contain_text(volume)
        assert run_axe(page) == []

        page.goto("/jobs")
        proposals = page.get_by_test_id("container-proposals")
        proposal = proposals.locator("li").filter(has_text=stack.slug)
        expect(proposal).to_contain_text(f"volumes {volume}", timeout=30_000)
        expect(proposal).to_contain_text(stack.names["proxy"])
        assert run_axe(page) == []
        proposal.get_by_role("button", name="Create job").click()
        expect(page.locator("#job-name")).to_have_value(stack.slug)
        expect(page.locator("#job-source-kind")).to_have_value("volume")
        expect(page.locator("#job-volumes")).to_have_value(volume)
        page.locator("#job-format").select_option("tar")
        page.get_by_role("button", name="Save job").click()
        expect(page.get_by_text("Job saved.")).to_be_visible()
        expect(page.get_by_text(f"Docker volumes {volume}")).to_be_visible()
        (job,) = client.ok("GET", "/api/jobs")["jobs"]
        assert job["slug"] == stack.slug
        assert sorted(job["stop_containers"]) == sorted(stack.names.values())
        expect(proposal.get_by_role("button", name="Job exists")).to_be_disabled()

        page.get_by_role("button", name="Run now").click()
        page.wait_for_url(re.compile(r"/runs/[0-9]+"))
        run_id = int(page.url.rsplit("/", 1)[1].split("?")[0])
        finished = client.wait_run(run_id, timeout=120)
        assert finished["status"] == "success", finished["error"]
        lines = [line["message"] for line in client.ok("GET", f"/api/runs/{run_id}/log")["lines"]]
        assert sum("stopped container " in line for line in lines) == 3
        assert any("containers down" in line for line in lines)
        for name in stack.names.values():
            assert state(podman_engine, name)["Status"] == "running"
        watch.assert_clean()

    (archive,) = (tmp_path / "store").rglob("*.tar")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
    assert file_hashes(out / "volumes" / volume) == file_hashes(tree)
