"""An SSH job made in the browser: Test connection, check the fingerprint, trust it, back up."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in
from tests.harness import BrowserClient, running_mackuper
from tests.servers.sshd import SSHServer
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e


def test_ssh_job_made_in_the_browser_trusts_the_shown_key_and_backs_up(
    sshd: SSHServer, ui: Any, tmp_path: Path
) -> None:
    user = sshd.users["password"]
    tree = sshd.make_remote_tree(user.username, {"notes/a.txt": "alpha\n", "b.bin": b"\x07" * 9000})
    with running_mackuper(tmp_path / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        client.complete_setup({"name": "Disk", "kind": "local", "path": str(tmp_path / "store")})
        page, watch = ui(mackuper.url)
        page.set_default_timeout(60_000)  # logging in hashes a password: slow on a busy machine
        log_in(page, timeout=60_000)
        page.goto("/jobs?new=1")
        page.locator("#job-name").fill("Remote notes")
        page.locator("#job-source-kind").select_option("ssh")
        page.locator("#ssh-host").fill(sshd.host)
        page.locator("#ssh-port").fill(str(sshd.port))
        page.locator("#ssh-username").fill(user.username)
        page.locator("#ssh-password").fill(user.password or "")
        page.locator("#job-paths").fill(str(tree))
        page.locator("#job-format").select_option("tar")

        page.get_by_role("button", name="Test connection").click()
        shown = page.get_by_text("ssh-ed25519 " + sshd.host_key_fingerprint, exact=True)
        expect(shown).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Trust this host key").click()
        expect(page.get_by_text("ok  " + str(tree))).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Save job").click()
        expect(page.get_by_text("Job saved.")).to_be_visible()
        watch.assert_clean()

        (job,) = client.ok("GET", "/api/jobs")["jobs"]
        assert job["source"]["secrets"]["password"] == "set"
        assert user.password not in str(job)
        run = client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
        assert client.wait_run(run["id"])["status"] == "success"
    (archive,) = (tmp_path / "store").rglob("*.tar")
    subprocess.run(["tar", "-xf", str(archive), "-C", str(tmp_path)], check=True)
    assert file_hashes(tmp_path / str(tree).lstrip("/")) == file_hashes(tree)
