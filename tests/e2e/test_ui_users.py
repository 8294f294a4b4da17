"""In the browser: an administrator adds an operator on the Users page, changes the
role, and finds both in the Audit log; the new user logs in and sees neither page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in, run_axe
from tests.harness import ADMIN_PASSWORD, ADMIN_USER, BrowserClient, running_mackuper

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "Operator-Horse-5"


def test_an_administrator_adds_a_user_and_the_audit_log_shows_it(tmp_path: Path, ui: Any) -> None:
    with running_mackuper(tmp_path / "data") as server:
        client = BrowserClient(server.url)
        client.complete_setup({"name": "Disk", "kind": "local", "path": str(tmp_path / "backups")})
        page, watch = ui(server.url)
        log_in(page, ADMIN_USER, ADMIN_PASSWORD)

        page.get_by_role("link", name="Users").click()
        form = page.get_by_role("region", name="Add a user")
        form.get_by_label("User name").fill("otto")
        form.get_by_label("First password").fill(NEW_PASSWORD)
        form.get_by_label("Role").select_option("operator")
        form.get_by_label("Folders an operator may restore into").fill(str(tmp_path / "restores"))
        form.get_by_role("button", name="Add user").click()
        # The page's own notice; the invitation and single sign-on panels have theirs.
        notice = page.locator("[x-data=usersPage] > [role=status]")
        expect(notice).to_have_text("otto added.")
        row = page.locator("tr[data-user='otto']")
        expect(row).to_contain_text(str(tmp_path / "restores"))
        row.get_by_label("Role").select_option("viewer")
        expect(notice).to_have_text("otto is now viewer.")
        assert run_axe(page) == []

        page.get_by_role("link", name="Audit log").click()
        table = page.get_by_role("table")
        expect(table).to_contain_text("user created")
        expect(table).to_contain_text("user changed")
        page.get_by_label("Action").select_option("user changed")
        page.get_by_role("button", name="Filter").click()
        expect(table.locator("tbody tr")).to_have_count(1)
        expect(table).to_contain_text('"role":"viewer"')
        assert run_axe(page) == []
        watch.assert_clean()

        other, other_watch = ui(server.url)
        log_in(other, "otto", NEW_PASSWORD)
        navigation = other.get_by_role("navigation", name="Main")
        expect(navigation.get_by_role("link", name="Jobs")).to_be_visible()
        expect(navigation.get_by_role("link", name="Users")).to_have_count(0)
        expect(navigation.get_by_role("link", name="Audit log")).to_have_count(0)
        response = other.goto("/users")
        assert response is not None and response.status == 403
        other_watch.assert_clean()
