"""Issue 15, item 13 (master.key): Settings says what the master key is and that it must
be kept, hands it out only after the password is typed again, and exports the
configuration without any secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.test_ui_keys import log_in
from tests.harness import ADMIN_PASSWORD, BrowserClient, running_mackuper

pytestmark = pytest.mark.e2e

PASSPHRASE = "correct horse battery staple 42"
CHANNEL_URL = "json://hooks.example.net/alerts?token=channel-secret-7781"


def test_settings_hand_out_the_master_key_after_the_password_and_export_without_secrets(
    tmp_path: Path, ui: Any
) -> None:
    with running_mackuper(tmp_path / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        destination = client.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "storage")}
        )
        client.create_job(
            "Sealed documents",
            tmp_path,
            destination["id"],
            encryption={"mode": "passphrase", "passphrase": PASSPHRASE},
        )
        client.ok("POST", "/api/notifications/channels", {"name": "Ops", "url": CHANNEL_URL})
        master_key = (mackuper.data_dir / "master.key").read_text().strip()

        page, watch = ui(mackuper.url)
        log_in(page)
        page.goto("/settings")
        section = page.get_by_role("region", name="Keep safe: master key and configuration")
        expect(section).to_contain_text(str(mackuper.data_dir / "master.key"))
        expect(section).to_contain_text("useless without it")

        download_key = section.get_by_role("button", name="Download master key")
        download_key.click()
        expect(section.get_by_role("alert")).to_contain_text("Type your password")
        section.get_by_label("Your password, to download the master key").fill("not-my-password")
        download_key.click()
        expect(section.get_by_role("alert")).to_contain_text("The password is wrong.")
        section.get_by_label("Your password, to download the master key").fill(ADMIN_PASSWORD)
        with page.expect_download() as started:
            download_key.click()
        key_file = tmp_path / "kept.key"
        started.value.save_as(key_file)
        assert key_file.read_text().strip() == master_key
        expect(section.get_by_role("alert")).to_be_hidden()

        with page.expect_download() as started:
            section.get_by_role("link", name="Download configuration (no secrets)").click()
        assert started.value.suggested_filename.startswith("mackuper-configuration-")
        export_file = tmp_path / "configuration.json"
        started.value.save_as(export_file)
        expect(section).to_contain_text("no secrets")
        watch.assert_clean()
        logged = (mackuper.data_dir / "process.log").read_text()

    text = export_file.read_text()
    exported = json.loads(text)
    assert [job["name"] for job in exported["jobs"]] == ["Sealed documents"]
    assert exported["jobs"][0]["encryption"]["passphrase"] == "set"
    assert [item["config"]["path"] for item in exported["destinations"]] == [
        str(tmp_path / "storage")
    ]
    assert [(item["name"], item["url"]) for item in exported["notification_channels"]] == [
        ("Ops", "set")
    ]
    assert "no secrets" in exported["warning"]
    for secret in (PASSPHRASE, "channel-secret-7781", master_key, ADMIN_PASSWORD):
        assert secret not in text
        assert secret not in logged
    assert "took a copy of the master key" in logged
