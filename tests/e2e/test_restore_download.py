"""Done when 5: in headless Chromium, download a backup of a job whose name has UTF-8
and spaces, and a single file taken out of it; check names and bytes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import PageWatch
from tests.harness import ADMIN_PASSWORD, ADMIN_USER, BrowserClient, running_mackuper
from tests.trees import b3sum, file_hashes, make_small_tree

pytestmark = pytest.mark.e2e

JOB_NAME = "Fotos de Élodie – 2026"


def test_browser_downloads_backup_with_utf8_name_and_one_file_out_of_it(
    tmp_path: Path, ui: Any
) -> None:
    source = make_small_tree(tmp_path / "source")
    with running_mackuper(tmp_path / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        destination = client.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "storage")}
        )
        job = client.ok(
            "POST",
            "/api/jobs",
            {
                "name": JOB_NAME,
                "source_kind": "local",
                "source": {"paths": [str(source)], "excludes": []},
                "archive_format": "tar.gz",
                "schedule": "",
                "destination_ids": [destination["id"]],
            },
        )["job"]
        run = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
        assert run["status"] == "success", run["error"]
        archive_name = run["artifacts"][0]["key"].rsplit("/", 1)[-1]

        page, watch = ui(mackuper.url)
        _log_in(page, watch)
        page.goto("/restore")
        row = page.get_by_role("row").filter(has_text=JOB_NAME)
        with page.expect_download() as started:
            row.get_by_role("link", name="Download").click()
        download = started.value
        assert download.suggested_filename == f"{JOB_NAME} - {archive_name}"
        saved = tmp_path / "downloaded.tar.gz"
        download.save_as(saved)

        row.get_by_role("button", name="Browse").click()
        wanted = "name with spaces é.txt"
        page.get_by_placeholder("Search by name").fill("spaces é")
        page.get_by_role("button", name="Search").click()
        entry = page.get_by_role("listitem").filter(has_text=wanted)
        with page.expect_download() as started:
            entry.get_by_role("link", name="Download").click()
        single = started.value
        assert single.suggested_filename == wanted
        single_path = tmp_path / "single.txt"
        single.save_as(single_path)

        page.get_by_role("button", name="Clear search").click()
        page.get_by_label("Directory (absolute path)").fill(str(tmp_path / "from-the-page"))
        page.get_by_role("button", name="Start restore").click()
        page.wait_for_url("**/runs/*")
        restore_id = int(page.url.rsplit("/", 1)[-1])
        restored_run = client.wait_run(restore_id)
        watch.assert_clean()

    data = saved.read_bytes()
    assert len(data) == run["bytes_written"]
    assert b3sum(saved) == run["blake3"]
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(saved), "-C", str(extracted)], check=True)
    assert file_hashes(extracted / str(source).lstrip("/")) == file_hashes(source)
    assert single_path.read_bytes() == (source / wanted).read_bytes()
    assert (restored_run["kind"], restored_run["status"]) == ("restore", "success")
    restored = tmp_path / "from-the-page" / str(source).lstrip("/")
    assert file_hashes(restored) == file_hashes(source)


def _log_in(page: Any, watch: PageWatch) -> None:
    page.goto("/login")
    page.fill("#login-username", ADMIN_USER)
    page.fill("#login-password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
