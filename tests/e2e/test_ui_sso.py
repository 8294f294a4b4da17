"""In Chromium, against `mackuper serve` and a real OpenID provider (oidc-provider from
npm) on loopback: an administrator sets up single sign-on and invites a user on the
Users page; the invited user sets a password through the link; a provider account
whose group maps to operator signs in with "Sign in with SSO" through the provider's
own pages and is an operator; an account in no mapped group is refused with a clear
message on the login page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import PageWatch, log_in, run_axe
from tests.harness import ADMIN_PASSWORD, ADMIN_USER, BrowserClient, running_mackuper
from tests.servers.oidc_provider import OidcProvider, running_oidc_provider

pytestmark = pytest.mark.e2e

INVITED_PASSWORD = "Invited-Horse-8"


def sign_in_with_sso(page: Page, provider: OidcProvider, login: str) -> None:
    # The provider's development pages import a web font; this machine has no Internet.
    page.route(
        "https://fonts.googleapis.com/**",
        lambda route: route.fulfill(status=200, content_type="text/css", body=""),
    )
    page.goto("/login")
    page.get_by_role("link", name="Sign in with SSO").click()
    page.wait_for_url(provider.issuer + "/**")
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()


def our_problems(watch: PageWatch, provider: OidcProvider) -> list[str]:
    """The watch's findings about Mackuper's pages (the provider's own are not ours)."""
    return [problem for problem in watch.problems if provider.issuer not in problem]


def test_sso_setup_invitation_and_sign_in_through_a_real_provider(tmp_path: Path, ui: Any) -> None:
    with running_mackuper(tmp_path / "data") as server:
        BrowserClient(server.url).complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "backups")}
        )
        with running_oidc_provider([server.url + "/sso/callback"]) as provider:
            admin, admin_watch = ui(server.url)
            log_in(admin, ADMIN_USER, ADMIN_PASSWORD)
            admin.get_by_role("link", name="Users").click()

            sso = admin.get_by_role("region", name="Single sign-on (OpenID Connect)")
            sso.get_by_label("Offer “Sign in with SSO” on the login page").check()
            sso.get_by_label("Issuer URL").fill(provider.issuer)
            expect(sso.get_by_label("Redirect URI to register at the provider")).to_have_value(
                server.url + "/sso/callback"
            )
            sso.get_by_label("Client ID").fill(provider.client_id)
            sso.get_by_label("Client secret").fill(provider.client_secret)
            sso.get_by_label("Groups and their roles").fill("backup-operators = operator")
            sso.get_by_role("button", name="Save single sign-on").click()
            expect(sso.get_by_role("status")).to_have_text("Single sign-on settings saved.")
            expect(sso.get_by_label("Client secret")).to_have_value("")
            expect(sso).to_contain_text("(set; blank keeps it)")

            invite = admin.get_by_role("region", name="Invite a user")
            invite.get_by_label("User name").fill("ivy")
            invite.get_by_label("Role").select_option("operator")
            invite.get_by_role("button", name="Invite").click()
            link = invite.get_by_label("Invitation link")
            expect(link).to_be_visible()
            expect(invite.locator("tr[data-invitation='ivy']")).to_contain_text("pending")
            url = link.input_value()
            assert url.startswith(server.url + "/invite#")
            assert run_axe(admin) == []
            admin_watch.assert_clean()

            invited, invited_watch = ui(server.url)
            invited.goto(url)
            expect(invited.get_by_text("You are invited as")).to_contain_text("ivy")
            invited.get_by_label("Password", exact=True).fill(INVITED_PASSWORD)
            invited.get_by_label("Password again").fill(INVITED_PASSWORD)
            invited.get_by_role("button", name="Set password and log in").click()
            expect(invited.get_by_role("navigation", name="Main")).to_be_visible()
            expect(invited.locator("header")).to_contain_text("ivy")
            invited_watch.assert_clean()

            olivia, olivia_watch = ui(server.url)
            sign_in_with_sso(olivia, provider, "olivia")
            navigation = olivia.get_by_role("navigation", name="Main")
            expect(navigation.get_by_role("link", name="Jobs")).to_be_visible()
            expect(navigation.get_by_role("link", name="Users")).to_have_count(0)
            expect(olivia.locator("header")).to_contain_text("olivia")
            # An operator may download (no such backup here); a viewer would be refused.
            download = olivia.request.get("/api/backups/999999/download")
            assert download.status == 404, download.text()
            refused = olivia.goto("/users")
            assert refused is not None and refused.status == 403
            assert our_problems(olivia_watch, provider) == []

            uma, uma_watch = ui(server.url)
            sign_in_with_sso(uma, provider, "uma")
            expect(uma.get_by_role("alert").filter(has_text="no group")).to_contain_text(
                "Your account at the identity provider is in no group that has a role"
            )
            expect(uma.get_by_role("link", name="Sign in with SSO")).to_be_visible()
            assert run_axe(uma) == []
            assert [
                problem
                for problem in our_problems(uma_watch, provider)
                if "status of 403" not in problem
            ] == []

            admin.get_by_role("link", name="Audit log").click()
            table = admin.get_by_role("table")
            expect(table).to_contain_text("SSO login failed")
            expect(table).to_contain_text("SSO login")
            expect(table).to_contain_text("invitation accepted")
            expect(table).not_to_contain_text(provider.client_secret)
