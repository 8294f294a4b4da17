"""MariaDB and SQLite jobs in the browser: "Test connection" in the job form, then on the
Restore page the dump downloaded alone (restored by sqlite3, rows compared) and
restored by Mackuper into a new file; a Redis backup offers the download only."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in, run_axe
from tests.harness import BrowserClient, running_mackuper
from tests.integration.database_support import fill_shop, make_sqlite, sqlite_fingerprint
from tests.servers.mariadb import running_mariadb
from tests.servers.sshd import SSHServer

pytestmark = pytest.mark.e2e


def test_database_kinds_test_connection_download_and_restore_in_the_browser(
    ui: Any, tmp_path: Path
) -> None:
    database = tmp_path / "app.db"
    make_sqlite(database, rows=500)
    with running_mariadb() as mariadb, running_mackuper(tmp_path / "data") as mackuper:
        fill_shop(mariadb, big_rows=10)
        client = BrowserClient(mackuper.url)
        client.complete_setup({"name": "Disk", "kind": "local", "path": str(tmp_path / "store")})
        page, watch = ui(mackuper.url)
        page.set_default_timeout(60_000)  # logging in hashes a password: slow on a busy machine
        log_in(page, timeout=60_000)

        # MariaDB: Test connection with a wrong password, then the right one.
        page.goto("/jobs?new=1")
        page.locator("#job-name").fill("Shop")
        page.locator("#job-source-kind").select_option("mariadb")
        page.locator("#db-host").fill(mariadb.host)
        page.locator("#db-port").fill(str(mariadb.port))
        page.locator("#db-username").fill(mariadb.user)
        page.locator("#db-password").fill("not the password")
        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_role("status")).to_contain_text("Access denied", timeout=30_000)
        page.locator("#db-password").fill(mariadb.password)
        page.get_by_role("button", name="Test connection").click()
        status = page.get_by_role("status").filter(has_text="Databases:")
        expect(status).to_contain_text("shop", timeout=30_000)
        expect(status).to_contain_text("Dump tool here: mariadb-dump")

        # SQLite: Test connection names the file, its tables and journal mode; save it.
        page.locator("#job-name").fill("App database")
        page.locator("#job-source-kind").select_option("sqlite")
        page.locator("#job-paths").fill(str(database))
        page.get_by_role("button", name="Test connection").click()
        status = page.get_by_role("status").filter(has_text="Files:")
        expect(status).to_contain_text("journal mode wal", timeout=30_000)
        assert run_axe(page) == []
        page.get_by_role("button", name="Save job").click()
        expect(page.get_by_text("Job saved.")).to_be_visible()
        (job,) = client.ok("GET", "/api/jobs")["jobs"]
        run = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
        assert run["status"] == "success", run

        page.goto("/restore")
        page.get_by_role("button", name="Browse").click()
        form = page.get_by_role("form", name="Restore a database")
        expect(form.locator("#db-restore-source")).to_have_value(str(database))
        with page.expect_download() as started:
            form.get_by_role("link", name=f"Download the dump of {database}").click()
        download = started.value
        assert download.suggested_filename == "app.db.sql"
        dump = tmp_path / "app.db.sql"
        download.save_as(dump)
        by_hand = tmp_path / "by_hand.db"
        subprocess.run(  # noqa: S603
            ["sqlite3", "-bail", str(by_hand)],  # noqa: S607
            input=dump.read_bytes(),
            check=True,
            timeout=60,
        )
        assert sqlite_fingerprint(by_hand) == sqlite_fingerprint(database)

        restored = tmp_path / "restored.db"
        page.locator("#db-restore-into").fill(str(restored))
        page.get_by_role("button", name="Restore database").click()
        page.wait_for_url("**/runs/*")
        run_id = int(page.url.rsplit("/", 1)[-1])
        assert client.wait_run(run_id)["status"] == "success"
        assert sqlite_fingerprint(restored) == sqlite_fingerprint(database)
        assert run_axe(page) == []
        watch.assert_clean()


def test_a_mariadb_job_on_an_ssh_host_made_in_the_browser_backs_up_there(
    ui: Any, sshd: SSHServer, tmp_path: Path
) -> None:
    user = sshd.users["password"]
    with running_mariadb() as mariadb, running_mackuper(tmp_path / "data") as mackuper:
        fill_shop(mariadb, big_rows=10)
        client = BrowserClient(mackuper.url)
        client.complete_setup({"name": "Disk", "kind": "local", "path": str(tmp_path / "store")})
        page, watch = ui(mackuper.url)
        page.set_default_timeout(60_000)
        log_in(page, timeout=60_000)

        page.goto("/jobs?new=1")
        page.locator("#job-name").fill("Shop over SSH")
        page.locator("#job-source-kind").select_option("mariadb")
        page.locator("#db-host").fill(mariadb.host)
        page.locator("#db-port").fill(str(mariadb.port))
        page.locator("#db-username").fill(mariadb.user)
        page.locator("#db-password").fill(mariadb.password)
        page.locator("#db-databases").fill("shop")
        page.locator("#db-ssh-use").check()
        page.locator("#db-ssh-host").fill(sshd.host)
        page.locator("#db-ssh-port").fill(str(sshd.port))
        page.locator("#db-ssh-username").fill(user.username)
        page.locator("#db-ssh-password").fill(user.password or "")
        page.get_by_role("button", name="Test SSH host").click()
        result = page.get_by_role("status", name="SSH host test")
        expect(result).to_contain_text(sshd.host_key_fingerprint, timeout=30_000)
        page.get_by_role("button", name="Trust this host key").click()
        expect(page.get_by_text("Trusted host key: ssh-ed25519")).to_be_visible()
        assert run_axe(page) == []
        page.get_by_role("button", name="Save job").click()
        expect(page.get_by_text("Job saved.")).to_be_visible()

        (job,) = client.ok("GET", "/api/jobs")["jobs"]
        assert job["source"]["ssh_host"] == sshd.host
        assert job["source"]["ssh_host_key"] == sshd.host_public_key
        assert user.password not in str(job)
        # An edit in the form keeps the SSH host and its stored password.
        page.goto("/jobs")
        page.get_by_role("button", name="Edit").click()
        expect(page.locator("#db-ssh-host")).to_have_value(sshd.host)
        page.get_by_role("button", name="Save job").click()
        expect(page.get_by_text("Job saved.")).to_be_visible()
        run = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
        assert run["status"] == "success", run
        manifest = next((tmp_path / "store").rglob("*.manifest.json")).read_text()
        assert "mariadb-dump on " in manifest
        watch.assert_clean()
