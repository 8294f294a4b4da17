"""Issue 15, keys: an encrypted backup whose key is not stored asks for it to browse and
to restore (before anything is queued), and a generated key cannot be skipped by accident.

Each backup made here is opened with `age` and `tar`, and each restore is compared with
the source by content hashes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import run_axe
from tests.harness import ADMIN_PASSWORD, ADMIN_USER, BrowserClient, running_mackuper
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.e2e


def log_in(page: Page) -> None:
    page.goto("/login")
    page.fill("#login-username", ADMIN_USER)
    page.fill("#login-password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def stored_archive(storage: Path) -> Path:
    archives = [path for path in storage.rglob("backup_*") if not path.name.endswith(".json")]
    assert len(archives) == 1, archives
    return archives[0]


def assert_age_opens(archive: Path, key_file: Path, source: Path, into: Path) -> None:
    """`age -d -i key | tar -xz` gives back the source, byte for byte."""
    into.mkdir()
    plain = subprocess.run(
        ["age", "-d", "-i", str(key_file), str(archive)], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-xz", "-C", str(into)], input=plain, check=True)
    assert file_hashes(into / str(source).lstrip("/")) == file_hashes(source)


def run_count(client: BrowserClient) -> int:
    return int(client.ok("GET", "/api/runs")["total"])


def test_encrypted_backup_without_stored_key_browses_after_the_key_is_typed_and_restores(
    tmp_path: Path, ui: Any
) -> None:
    source = make_small_tree(tmp_path / "source")
    with running_mackuper(tmp_path / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        destination = client.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "storage")}
        )
        pair = client.ok("POST", "/api/encryption/identity")
        other = client.ok("POST", "/api/encryption/identity")["identity"]
        encryption = {"mode": "recipients", "recipients": [pair["recipient"]]}
        job = client.create_job(
            "Sealed notes",
            source,
            destination["id"],
            archive_format="tar.gz",
            encryption={**encryption, "identity_saved": True},
        )
        run = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
        assert run["status"] == "success", run["error"]

        page, watch = ui(mackuper.url)
        log_in(page)
        page.goto("/restore")
        page.get_by_role("row").filter(has_text="Sealed notes").get_by_role(
            "button", name="Browse"
        ).click()
        key_form = page.get_by_role("form", name="Key for this backup")
        expect(key_form).to_be_visible()
        expect(page.get_by_text("Nothing here.")).to_be_hidden()
        expect(page.locator("label[for=restore-decryption]")).to_contain_text(
            "the job stores no key"
        )
        assert run_axe(page) == []

        # Restore started without the key: a message on the form, and no run.
        runs_before = run_count(client)
        target = tmp_path / "restored"
        page.get_by_label("Directory (absolute path)").fill(str(target))
        page.get_by_role("button", name="Start restore").click()
        decryption_error = (
            page.locator("#restore-decryption").locator("xpath=..").locator(".field-error")
        )
        expect(decryption_error).to_contain_text("stores no key")
        assert run_count(client) == runs_before

        # A wrong key does not open the file list, and says so.
        page.locator("#browse-key").fill(other)
        key_form.get_by_role("button", name="Open with this key").click()
        expect(key_form.locator(".field-error")).to_contain_text("does not open")
        expect(page.get_by_role("listitem")).to_have_count(0)

        page.locator("#browse-key").fill(pair["identity"])
        key_form.get_by_role("button", name="Open with this key").click()
        expect(key_form).to_be_hidden()
        top = str(source).strip("/").split("/")[0] + "/"
        expect(page.get_by_role("listitem").filter(has_text=top)).to_be_visible()
        page.get_by_placeholder("Search by name").fill("readme")
        page.get_by_role("button", name="Search").click()
        readme = page.get_by_role("listitem").filter(has_text="readme.txt")
        expect(readme.locator("time")).to_contain_text("modified")
        with page.expect_download() as started:
            readme.get_by_role("button", name=re.compile("Download")).click()
        assert started.value.suggested_filename == "readme.txt"
        single = tmp_path / "single.txt"
        started.value.save_as(single)
        expect(page.get_by_role("alert").filter(has_text="stores no key")).to_be_hidden()

        page.get_by_role("button", name="Clear search").click()

        # A wrong key in the restore form: refused before anything is queued.
        page.locator("#restore-decryption").fill(other)
        page.get_by_role("button", name="Start restore").click()
        expect(decryption_error).to_contain_text("does not open")
        assert run_count(client) == runs_before

        page.locator("#restore-decryption").fill(pair["identity"])
        page.get_by_role("button", name="Start restore").click()
        page.wait_for_url("**/runs/*")
        restored = client.wait_run(int(page.url.rsplit("/", 1)[-1]))
        assert run_count(client) == runs_before + 1
        watch.assert_clean()
        logged = (mackuper.data_dir / "process.log").read_text()

    assert (restored["kind"], restored["status"]) == ("restore", "success"), restored["error"]
    assert file_hashes(target / str(source).lstrip("/")) == file_hashes(source)
    assert single.read_bytes() == (source / "docs" / "readme.txt").read_bytes()
    assert pair["identity"] not in logged
    key_file = tmp_path / "key.txt"
    key_file.write_text(pair["identity"] + "\n")
    assert_age_opens(stored_archive(tmp_path / "storage"), key_file, source, tmp_path / "age")


def test_generated_key_must_be_confirmed_saved_before_the_job_saves(
    tmp_path: Path, ui: Any
) -> None:
    source = make_small_tree(tmp_path / "source")
    with running_mackuper(tmp_path / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        client.complete_setup({"name": "Disk", "kind": "local", "path": str(tmp_path / "storage")})
        page, watch = ui(mackuper.url, permissions=["clipboard-read", "clipboard-write"])
        log_in(page)
        page.goto("/jobs")
        page.get_by_role("button", name="New job").click()
        page.locator("#job-name").fill("Key pair job")
        page.locator("#job-paths").fill(str(source))
        page.locator("#job-schedule").fill("")
        page.get_by_role("checkbox", name="Disk").check()
        page.locator("#job-encryption").select_option("recipients")
        page.get_by_role("button", name="Generate a key pair").click()
        identity_box = page.locator("#job-identity")
        expect(identity_box).to_have_value(re.compile(r"^AGE-SECRET-KEY-1"))
        identity = identity_box.input_value()
        recipient = page.locator("#job-recipients").input_value().strip()
        save = page.get_by_role("button", name="Save job")
        expect(save).to_be_disabled()
        assert run_axe(page) == []

        page.get_by_role("button", name="Copy private key").click()
        expect(page.get_by_text("Private key copied.")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == identity
        with page.expect_download() as started:
            page.get_by_role("button", name="Download private key").click()
        key_file = tmp_path / "downloaded-key.txt"
        started.value.save_as(key_file)
        assert key_file.read_text().strip() == identity

        # The API refuses the same job from this session until the key is confirmed.
        body = {
            "name": "Unconfirmed",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "schedule": "",
            "archive_format": "tar.gz",
            "destination_ids": [client.ok("GET", "/api/destinations")["destinations"][0]["id"]],
            "encryption": {"mode": "recipients", "recipients": recipient},
        }
        refused = page.evaluate("body => window.Mackuper.api('POST', '/api/jobs', body)", body)
        assert refused["status"] == 422, refused
        assert "encryption.identity_saved" in refused["data"]["fields"]
        assert client.ok("GET", "/api/jobs")["jobs"] == []

        page.get_by_label(re.compile("I have saved the private key")).check()
        expect(save).to_be_enabled()
        save.click()
        expect(page.get_by_text("Job saved.")).to_be_visible()
        job = client.ok("GET", "/api/jobs")["jobs"][0]
        assert job["encryption"]["recipients"] == [recipient]
        assert job["encryption"]["identity"] == "not stored"
        # Editing the saved job later asks nothing again: that key was confirmed then.
        edited = page.evaluate(
            "body => window.Mackuper.api('PUT', '/api/jobs/' + body.id, body.job)",
            {"id": job["id"], "job": {**body, "name": "Key pair job"}},
        )
        assert edited["status"] == 200, edited
        run = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
        assert run["status"] == "success", run["error"]
        watch.assert_clean()

    assert_age_opens(stored_archive(tmp_path / "storage"), key_file, source, tmp_path / "age")
