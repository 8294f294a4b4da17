"""The Restore page puts a volume backup into a Docker volume, in Chromium (issue 18).

A volume job's backup is restored "Into a Docker volume": first into a new volume,
then into a stopped container's volume that holds files, where the page checks the
volume, names the container and what will be overwritten, and restores only once the
volume's name is typed again. Both volumes are read back through podman's archive
endpoint and extracted by GNU tar; their files' hashes equal the source's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in, run_axe
from tests.harness import BrowserClient, running_mackuper
from tests.integration.docker_support import run_container, unique, volume_with
from tests.integration.test_volume_restore import read_back
from tests.servers.podman import BASE_IMAGE, PodmanEngine, podman
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.e2e


def test_restore_page_restores_a_volume_backup_into_new_and_stopped_volumes(
    podman_engine: PodmanEngine, ui: Any, tmp_path: Path
) -> None:
    tree = make_small_tree(tmp_path / "tree")
    volume = volume_with(podman_engine, tree)
    old = tmp_path / "old"
    (old / "docs").mkdir(parents=True)
    (old / "docs" / "readme.txt").write_text("an older readme\n")
    (old / "kept.txt").write_text("not in the backup\n")
    existing = volume_with(podman_engine, old)
    user = unique("mkp-stopped")
    run_container(
        podman_engine,
        BASE_IMAGE,
        ["true"],
        name=user,
        labels=podman_engine.labels(),
        volumes={existing: {"bind": "/data", "mode": "rw"}},
    )
    fresh = unique("mkp-fresh")
    try:
        with running_mackuper(tmp_path / "data") as mackuper:
            client = BrowserClient(mackuper.url)
            client.complete_setup(
                {"name": "Disk", "kind": "local", "path": str(tmp_path / "store")}
            )
            client.ok("PUT", "/api/containers/engine", {"address": podman_engine.url})
            (destination,) = client.ok("GET", "/api/destinations")["destinations"]
            job = client.ok(
                "POST",
                "/api/jobs",
                {
                    "name": "Volumes",
                    "source_kind": "volume",
                    "source": {"volumes": [volume]},
                    "archive_format": "tar.zst",
                    "destination_ids": [destination["id"]],
                },
            )["job"]
            run = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
            assert run["status"] == "success", run

            page, watch = ui(mackuper.url)
            page.set_default_timeout(60_000)
            log_in(page, timeout=60_000)

            # Into a new volume.
            page.goto("/restore")
            page.get_by_role("button", name="Browse").click()
            page.locator("#restore-kind").select_option("volume")
            expect(page.locator("#restore-volume-source")).to_have_value(volume)
            expect(page.locator("#restore-volume-into")).to_have_value(f"{volume}-restored")
            page.locator("#restore-volume-into").fill(fresh)
            assert run_axe(page) == []
            page.get_by_role("button", name="Start restore").click()
            page.wait_for_url(re.compile(r"/runs/[0-9]+"))
            run_id = int(page.url.rsplit("/", 1)[1].split("?")[0])
            assert client.wait_run(run_id)["status"] == "success"
            restored = read_back(podman_engine, fresh, tmp_path / "fresh")
            assert file_hashes(restored) == file_hashes(tree)

            # Into a stopped container's volume that holds files: checked and confirmed.
            page.goto("/restore")
            page.get_by_role("button", name="Browse").click()
            page.locator("#restore-kind").select_option("volume")
            page.locator("#restore-volume-into").fill(existing)
            page.locator("#restore-volume-existing").check()
            page.get_by_role("button", name="Start restore").click()
            confirm = page.get_by_role("alert", name="Confirm replacing the volume's files")
            expect(confirm).to_contain_text(f"Volume {existing} holds files", timeout=30_000)
            expect(confirm).to_contain_text("which overwrites: docs.")
            expect(confirm).to_contain_text("Everything else in the volume stays.")
            expect(page.get_by_text(f"Used by {user} (exited).")).to_be_visible()
            assert run_axe(page) == []
            page.get_by_role("button", name="Start restore").click()
            expect(page.get_by_text(f"Type {existing} to confirm")).to_be_visible()
            page.locator("#restore-volume-confirm").fill(existing)
            page.get_by_role("button", name="Start restore").click()
            page.wait_for_url(re.compile(r"/runs/[0-9]+"))
            run_id = int(page.url.rsplit("/", 1)[1].split("?")[0])
            assert client.wait_run(run_id)["status"] == "success"
            watch.assert_clean()

        replaced = read_back(podman_engine, existing, tmp_path / "existing")
        assert file_hashes(replaced) == {
            **file_hashes(tree),
            "kept.txt": file_hashes(old)["kept.txt"],
        }
    finally:
        podman("volume", "rm", "-f", fresh, check=False)
