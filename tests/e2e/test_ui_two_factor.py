"""In Chromium: two-factor login. An authenticator app is set up on the account page
and then asked for at login (codes computed here with pyotp), a recovery code works
once and is refused the second time, and a passkey is registered and used to log in
with Chromium's virtual authenticator (DevTools protocol, WebAuthn domain).

The pages are opened at http://localhost:<port>, not 127.0.0.1: a passkey belongs to a
domain name (its RP id), and an IP address cannot be one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import log_in, run_axe
from tests.harness import ADMIN_PASSWORD, ADMIN_USER, BrowserClient, running_mackuper

pytestmark = pytest.mark.e2e

SECOND_STEP_FIELD = "Code from your authenticator app, or a recovery code"


def _by_name(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


ALPINE_READY = (
    "() => !!document.querySelector('main [x-data], [x-data=logoutButton]')?._x_dataStack"
)


def _wait_for_alpine(page: Page) -> None:
    """On a loaded machine a click before Alpine has bound a form does nothing useful
    (and Alpine then resets what was typed), so wait until it has."""
    page.wait_for_function(ALPINE_READY)


def _log_out(page: Page) -> None:
    _wait_for_alpine(page)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url("/login")


def _password_step(page: Page) -> None:
    page.goto("/login")
    _wait_for_alpine(page)
    page.get_by_label("User name").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Second step")).to_be_visible()
    _wait_for_alpine(page)


def _second_step_code(page: Page, code: str) -> None:
    page.get_by_label(SECOND_STEP_FIELD).fill(code)
    page.get_by_role("button", name="Verify").click()


def _start(tmp_path: Path, server: Any) -> None:
    BrowserClient(server.url).complete_setup(
        {"name": "Disk", "kind": "local", "path": str(tmp_path / "backups")}
    )


def test_an_authenticator_app_and_a_recovery_code_in_the_browser(tmp_path: Path, ui: Any) -> None:
    with running_mackuper(tmp_path / "data") as server:
        _start(tmp_path, server)
        page, watch = ui(_by_name(server.url))
        log_in(page)

        page.get_by_role("link", name="Settings").click()
        page.get_by_role("link", name="Set up two-factor login").click()
        page.get_by_role("button", name="Set up an authenticator app").click()
        secret = page.get_by_test_id("totp-secret").inner_text().strip()
        totp = pyotp.TOTP(secret)
        assert page.get_by_test_id("totp-uri").inner_text().startswith("otpauth://totp/")
        page.get_by_label("Code from the app").fill("000000")
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("alert")).to_contain_text("not the app's current one")
        page.get_by_label("Code from the app").fill(totp.now())
        page.get_by_role("button", name="Confirm").click()
        codes_list = page.get_by_role("list", name="Recovery codes")
        expect(codes_list.get_by_role("listitem")).to_have_count(10)
        codes = [item.strip() for item in codes_list.get_by_role("listitem").all_inner_texts()]
        expect(page.get_by_test_id("app-on")).to_contain_text("10 recovery codes left")
        assert run_axe(page) == []

        # The password alone no longer logs in; the app's next code does.
        _log_out(page)
        _password_step(page)
        assert page.goto("/jobs") is not None
        expect(page).to_have_url("/login")
        _password_step(page)
        assert run_axe(page) == []
        _second_step_code(page, totp.at(time.time() + 30))
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()

        # A recovery code: accepted once, refused the second time.
        _log_out(page)
        _password_step(page)
        _second_step_code(page, codes[0])
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        _log_out(page)
        _password_step(page)
        _second_step_code(page, codes[0])
        expect(page.get_by_role("alert")).to_have_text("That code is wrong or was used already.")
        expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
        _second_step_code(page, codes[1])
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        page.goto("/account/two-factor")
        expect(page.get_by_test_id("app-on")).to_contain_text("8 recovery codes left")
        watch.assert_clean()


def test_a_passkey_is_registered_and_logs_in_with_a_virtual_authenticator(
    tmp_path: Path, ui: Any
) -> None:
    with running_mackuper(tmp_path / "data") as server:
        _start(tmp_path, server)
        page, watch = ui(_by_name(server.url))
        devtools = page.context.new_cdp_session(page)
        devtools.send("WebAuthn.enable")
        authenticator = devtools.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )["authenticatorId"]
        log_in(page)

        page.goto("/account/two-factor")
        _wait_for_alpine(page)
        page.get_by_label("Name for this passkey").fill("laptop")
        page.get_by_role("button", name="Add a passkey").click()
        expect(page.get_by_role("status")).to_have_text("Passkey laptop added.")
        expect(page.locator("tr[data-passkey='laptop']")).to_be_visible()
        stored = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert len(stored["credentials"]) == 1
        assert stored["credentials"][0]["rpId"] == "localhost"
        assert stored["credentials"][0]["signCount"] == 1
        assert run_axe(page) == []

        _log_out(page)
        _password_step(page)
        expect(page.get_by_label(SECOND_STEP_FIELD)).to_have_count(0)
        page.get_by_role("button", name="Use a passkey").click()
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        stored = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert stored["credentials"][0]["signCount"] == 2, "the login used the passkey"

        page.goto("/account/two-factor")
        expect(page.locator("tr[data-passkey='laptop']")).not_to_contain_text("never")

        # Passwordless: the passkey alone (the authenticator verified its user).
        _log_out(page)
        _wait_for_alpine(page)
        page.get_by_role("button", name="Use a passkey instead").click()
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        stored = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert stored["credentials"][0]["signCount"] == 3

        # Removing it needs the password; then the password alone logs in again.
        page.goto("/account/two-factor")
        _wait_for_alpine(page)
        page.locator("tr[data-passkey='laptop']").get_by_role("button", name="Remove").click()
        page.get_by_label("Your password").fill("not the password")
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("alert")).to_have_text("The password is wrong.")
        page.get_by_label("Your password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("status")).to_have_text("Passkey removed.")
        expect(page.locator("tr[data-passkey='laptop']")).to_have_count(0)
        _log_out(page)
        log_in(page)
        watch.assert_clean()
