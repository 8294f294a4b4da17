"""Every page of a seeded Mackuper in Chromium: axe-core finds no serious or critical
problem, and failures show a readable message where the user is looking."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.e2e import browser
from tests.e2e.browser import PageWatch, run_axe
from tests.harness import ADMIN_PASSWORD, BrowserClient, running_mackuper
from tests.servers.ports import free_port
from tests.trees import make_small_tree

pytestmark = pytest.mark.e2e


class Seeded:
    def __init__(self, url: str, run_id: int, session: Any, data_dir: Path) -> None:
        self.url = url
        self.run_id = run_id
        self.session = session  # a logged-in browser's cookies (Playwright storage state)
        self.data_dir = data_dir


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, chromium: Browser) -> Iterator[Seeded]:
    """A set-up instance with a local destination, a job and one successful run."""
    root = tmp_path_factory.mktemp("ui-pages")
    source = make_small_tree(root / "source")
    with running_mackuper(root / "data") as mackuper:
        client = BrowserClient(mackuper.url)
        destination = client.complete_setup(
            {"name": "Local disk", "kind": "local", "path": str(root / "backups")}
        )
        job = client.ok(
            "POST",
            "/api/jobs",
            {
                "name": "Documents",
                "source_kind": "local",
                "source": {"paths": [str(source)], "excludes": ["*.tmp"]},
                "archive_format": "tar.gz",
                "schedule": "30 1 * * *",
                "destination_ids": [destination["id"]],
            },
        )["job"]
        run = client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
        assert client.wait_run(run["id"])["status"] == "success"
        context = chromium.new_context(base_url=mackuper.url)
        page = context.new_page()
        browser.log_in(page)
        session = context.storage_state()
        context.close()
        yield Seeded(mackuper.url, run["id"], session, root / "data")


def log_in(ui: Any, seeded: Seeded) -> tuple[Page, PageWatch]:
    """A page in a browser already logged in (the login form is covered by the axe test)."""
    page, watch = ui(seeded.url, storage_state=seeded.session)
    return page, watch


def open_settled(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")


def audit(page: Page, path: str, problems: dict[str, Any]) -> None:
    """axe in the light scheme, then in the dark one (prefers-color-scheme)."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.wait_for_timeout(400)  # let colour transitions (150 ms) finish first
        problems[f"{path} ({scheme})"] = run_axe(page)


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def overflow(page: Page) -> dict[str, Any] | None:
    """None when nothing makes the page scroll sideways and every button is on screen;
    else the widths, the widest elements outside any scroll container and the buttons
    beyond the right edge."""
    widths: dict[str, Any] = page.evaluate(
        """() => {
             const viewport = window.innerWidth;
             const clipped = (el) => {
               for (let up = el.parentElement; up; up = up.parentElement) {
                 if (getComputedStyle(up).overflowX !== 'visible') return true;
               }
               return false;
             };
             const wide = [...document.querySelectorAll('body *')]
               .filter(el => el.getBoundingClientRect().right > viewport + 0.5 && !clipped(el))
               .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                 + ' ' + (el.textContent || '').trim().slice(0, 30)).slice(0, 6);
             // A button in a table that scrolls sideways is out of reach all the same.
             const offscreen = [...document.querySelectorAll('main button, main a.btn')]
               .filter(el => el.checkVisibility())
               .filter(el => el.getBoundingClientRect().right > viewport + 0.5)
               .map(el => (el.textContent || '').trim()).slice(0, 6);
             return {scroll: document.documentElement.scrollWidth, viewport, wide, offscreen};
           }"""
    )
    fits = widths["scroll"] <= widths["viewport"] and not widths["offscreen"]
    return None if fits else widths


class NotFound:
    """Every 404 a page caused: its own requests (scripts, styles, images) and the
    browser's (a missing favicon is reported only on the console)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def watch(self, page: Page) -> None:
        page.on("response", lambda response: self.note(response.status, response.url))
        page.on("console", self.on_console)

    def note(self, status: int, url: str) -> None:
        if status == 404:
            self.urls.append(url)

    def on_console(self, message: ConsoleMessage) -> None:
        if "status of 404" in message.text:
            self.urls.append(message.location.get("url") or message.text)


def check(page: Page, where: str, problems: dict[str, Any], too_wide: dict[str, Any]) -> None:
    too_wide[where] = overflow(page)
    audit(page, where, problems)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_every_page_fits_the_screen_and_axe_finds_no_serious_problem(
    seeded: Seeded, ui: Any, viewport: dict[str, int]
) -> None:
    size = f"{viewport['width']}x{viewport['height']}"
    problems: dict[str, Any] = {}
    too_wide: dict[str, Any] = {}
    missing = NotFound()
    anonymous, anonymous_watch = ui(seeded.url, viewport=viewport)
    missing.watch(anonymous)
    open_settled(anonymous, "/login")
    check(anonymous, f"/login at {size}", problems, too_wide)
    anonymous_watch.assert_clean()

    page, watch = ui(seeded.url, storage_state=seeded.session, viewport=viewport)
    missing.watch(page)
    open_settled(page, "/")
    menu = page.get_by_role("button", name="Menu")
    if viewport is PHONE:  # the tabs fold behind a menu button on phones
        expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
        header = page.locator("header").bounding_box()
        assert header is not None
        assert header["height"] < 70
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
    else:
        expect(menu).to_be_hidden()
    tabs = page.get_by_role("navigation", name="Main").get_by_role("link")
    paths = [href for href in tabs.evaluate_all("links => links.map(a => a.getAttribute('href'))")]
    assert {"/", "/jobs", "/history", "/restore", "/settings"} <= set(paths)
    for path in [*paths, f"/runs/{seeded.run_id}", "/jobs?new=1", "/api-reference"]:
        open_settled(page, path)
        check(page, f"{path} at {size}", problems, too_wide)
    open_settled(page, "/restore")
    page.get_by_role("button", name="Browse").first.click()
    expect(page.get_by_role("region", name="Backup contents")).to_be_visible()
    page.wait_for_load_state("networkidle")
    check(page, f"/restore (browsing) at {size}", problems, too_wide)
    sideways = {where: wide for where, wide in too_wide.items() if wide}
    assert sideways == {}, json.dumps(sideways, indent=1)
    found = {path: issues for path, issues in problems.items() if issues}
    assert found == {}, json.dumps(found, indent=1)
    assert missing.urls == []
    watch.assert_clean()


def test_jobs_list_says_the_schedule_in_words(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/jobs")
    row = page.get_by_role("row").filter(has_text="Documents")
    expect(row).to_contain_text("At 01:30 every day")
    watch.assert_clean()


def test_invalid_cron_is_explained_next_to_the_schedule_field(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/jobs")
    page.get_by_role("button", name="New job").click()
    page.locator("#job-schedule").fill("61 25 * * *")
    message = page.locator("#job-schedule").locator("xpath=..").locator(".field-error")
    expect(message).to_contain_text(re.compile("cron", re.IGNORECASE))
    expect(page.get_by_role("list", name="Next runs").locator("li")).to_have_count(0)
    page.locator("#job-schedule").fill("15 4 * * 1")
    expect(message).to_be_hidden()
    expect(page.get_by_role("list", name="Next runs").locator("li")).to_have_count(5)
    watch.assert_clean()


def test_unreachable_s3_endpoint_says_so_when_testing_the_connection(
    seeded: Seeded, ui: Any
) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/settings")
    page.get_by_role("button", name="Add destination").click()
    page.locator("#dest-name").fill("Nowhere")
    page.locator("#dest-kind").select_option("s3")
    page.locator("#dest-bucket").fill("backups")
    page.locator("#dest-access").fill("AKIAEXAMPLE")
    page.locator("#dest-secret").fill("not-a-real-secret")
    page.locator("#dest-endpoint").fill(f"http://127.0.0.1:{free_port()}")
    page.get_by_role("button", name="Test connection").click()
    alert = page.get_by_role("alert").filter(has_text=re.compile(r"\S"))
    expect(alert).to_contain_text(re.compile("reach|connect", re.IGNORECASE), timeout=60_000)
    expect(alert).not_to_contain_text("Traceback")
    expect(alert).not_to_contain_text("not-a-real-secret")
    watch.assert_clean()


def test_duplicate_job_name_is_reported_on_the_name_field(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/jobs")
    page.get_by_role("button", name="New job").click()
    page.locator("#job-name").fill("Documents")
    page.locator("#job-paths").fill("/tmp")
    page.get_by_role("button", name="Save job").click()
    message = page.locator("#job-name").locator("xpath=..").locator(".field-error")
    expect(message).to_have_text("A job named 'Documents' already exists.")
    expect(page.locator("#job-name")).to_have_attribute("aria-invalid", "true")
    watch.assert_clean()


def test_server_error_shows_what_to_do_instead_of_a_raw_page(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    watch.allow_server_errors = True
    open_settled(page, "/jobs")
    # A proxy in front of Mackuper answering 500 with its own HTML page.
    page.route(
        re.compile(r"/api/jobs/\d+/run$"),
        lambda route: route.fulfill(
            status=500, content_type="text/html", body="<h1>Internal Server Error</h1>"
        ),
    )
    page.get_by_role("row").filter(has_text="Documents").get_by_role(
        "button", name="Run now"
    ).click()
    alert = page.get_by_role("alert").filter(has_text=re.compile(r"\S"))
    expect(alert).to_have_text(
        "The server ran into a problem (error 500). Try again; if it keeps happening,"
        " the details are in Mackuper's log."
    )
    expect(page).to_have_url(re.compile("/jobs$"))
    watch.assert_clean()


def test_history_links_each_run_to_its_log(seeded: Seeded, ui: Any, tmp_path: Path) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/history")
    page.get_by_label("Status").select_option("failed")
    expect(page.get_by_text("No runs match.")).to_be_visible()
    page.get_by_label("Status").select_option("success")
    row = page.get_by_role("row").filter(has_text="Documents")
    expect(row).to_have_count(1)
    row.get_by_role("link", name=f"#{seeded.run_id}").click()
    expect(page.get_by_role("list", name="Log")).to_contain_text("finished: success")
    watch.assert_clean()


def test_an_api_token_made_in_settings_is_shown_once_and_works(seeded: Seeded, ui: Any) -> None:
    import requests

    page, watch = log_in(ui, seeded)
    open_settled(page, "/settings")
    page.locator("#token-name").fill("nightly script")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_test_id("new-token")).to_contain_text("mkp_")
    token = page.get_by_test_id("new-token").inner_text()
    assert token.startswith("mkp_")
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(seeded.url + "/api/jobs", headers=headers, timeout=10).status_code == 200

    open_settled(page, "/settings")
    expect(page.get_by_test_id("new-token")).to_be_hidden()
    assert token not in page.content()
    page.get_by_role("row", name=re.compile("nightly script")).get_by_role(
        "button", name="Revoke"
    ).click()
    expect(page.get_by_role("row", name=re.compile("nightly script"))).to_have_count(0)
    assert requests.get(seeded.url + "/api/jobs", headers=headers, timeout=10).status_code == 401
    watch.assert_clean()


def test_a_token_made_with_an_expiry_shows_it_and_its_last_use_in_settings(
    seeded: Seeded, ui: Any
) -> None:
    import requests

    page, watch = log_in(ui, seeded)
    open_settled(page, "/settings")
    page.locator("#token-name").fill("monthly report")
    page.get_by_label("Expires").select_option("30")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_test_id("new-token")).to_contain_text("mkp_")
    token = page.get_by_test_id("new-token").inner_text()
    row = page.get_by_role("row", name=re.compile("monthly report"))
    expect(row.get_by_role("cell").nth(2)).to_have_text("never")  # last used
    expect(row.get_by_role("cell").nth(3)).to_have_text("in 30 days")  # expires

    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(seeded.url + "/api/jobs", headers=headers, timeout=10).status_code == 200
    open_settled(page, "/settings")
    row = page.get_by_role("row", name=re.compile("monthly report"))
    expect(row.get_by_role("cell").nth(2)).to_have_text("a few seconds ago")
    expect(row.get_by_role("cell").nth(3)).to_have_text("in 30 days")
    watch.assert_clean()


def test_change_password_asks_for_the_new_one_twice(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/settings")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    page.get_by_label("Current password").fill(ADMIN_PASSWORD)
    page.get_by_label("New password", exact=True).fill("Another-Secret-1")
    page.get_by_label("Repeat the new password").fill("Another-Secret-2")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert").filter(has_text="differ")).to_be_visible()
    assert not [url for url in sent if url.endswith("/api/account/password")]
    watch.assert_clean()


def test_cancel_clears_the_destination_form_s_error(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/settings")
    page.get_by_role("button", name="Add destination").click()
    page.locator("#dest-kind").select_option("local")
    destinations = page.get_by_role("region", name="Destinations")
    destinations.get_by_role("button", name="Save", exact=True).click()
    alert = page.locator("[x-data=settingsPage] > p[role=alert]")
    expect(alert).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(alert).to_be_hidden()
    page.get_by_role("button", name="Add destination").click()
    expect(alert).to_be_hidden()
    expect(page.locator("#dest-name")).not_to_have_attribute("aria-invalid", "true")
    watch.assert_clean()


def test_local_destination_suggests_the_directory_serve_uses(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/settings")
    page.get_by_role("button", name="Add destination").click()
    page.locator("#dest-kind").select_option("local")
    suggested = str((seeded.data_dir / "local_backups").resolve())
    expect(page.locator("#dest-path")).to_have_attribute("placeholder", suggested)
    watch.assert_clean()


def test_ssh_test_connection_button_looks_like_a_button(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/jobs")
    page.get_by_role("button", name="New job").click()
    page.locator("#job-source-kind").select_option("ssh")
    button = page.get_by_role("button", name="Test connection")
    expect(button).to_be_visible()
    border = button.evaluate("b => getComputedStyle(b).borderTopColor")
    assert border not in ("rgba(0, 0, 0, 0)", "transparent"), border
    watch.assert_clean()


def test_commands_are_named_on_the_jobs_list(seeded: Seeded, ui: Any) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/jobs")
    row = page.get_by_role("row").filter(has_text="Documents")
    row.get_by_role("button", name="Alerts & commands").click()
    before = page.get_by_label(re.compile("^Before each backup"))
    before.fill("true")
    page.get_by_role("button", name="Save alerts and commands").click()
    expect(page.get_by_text("Alerts and commands saved.")).to_be_visible()
    open_settled(page, "/jobs")
    expect(row).to_contain_text("Runs a command before")
    row.get_by_role("button", name="Alerts & commands").click()
    before.fill("")
    page.get_by_role("button", name="Save alerts and commands").click()
    expect(page.get_by_text("Alerts and commands saved.")).to_be_visible()
    open_settled(page, "/jobs")
    expect(row).not_to_contain_text("Runs a command")
    watch.assert_clean()


def test_missing_source_path_is_a_warning_and_delete_asks_in_a_dialog_naming_the_job(
    seeded: Seeded, ui: Any, tmp_path: Path
) -> None:
    page, watch = log_in(ui, seeded)
    open_settled(page, "/jobs")
    page.get_by_role("button", name="New job").click()
    page.locator("#job-name").fill("Ghost files")
    missing = tmp_path / "not-there"
    page.locator("#job-paths").fill(str(missing))
    page.get_by_role("checkbox", name="Local disk").check()
    page.get_by_role("button", name="Save job").click()
    expect(page.get_by_test_id("job-warning")).to_contain_text(f"{missing} does not exist")
    row = page.get_by_role("row").filter(has_text="Ghost files")
    row.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Delete the job “Ghost files”?")
    assert dialog.evaluate("d => d.matches(':modal')")  # over the page, where the person is
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    row.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete job").click()
    expect(page.get_by_role("row").filter(has_text="Ghost files")).to_have_count(0)
    expect(page.get_by_role("row").filter(has_text="Documents")).to_have_count(1)
    watch.assert_clean()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_setup_wizard_shows_each_error_once_and_a_busy_test_button(
    tmp_path: Path, ui: Any, viewport: dict[str, int]
) -> None:
    with running_mackuper(tmp_path / "data") as mackuper:
        page, watch = ui(mackuper.url, viewport=viewport)
        missing = NotFound()
        missing.watch(page)
        open_settled(page, "/setup")
        too_wide = {"/setup": overflow(page)}
        problems: dict[str, Any] = {}
        audit(page, "/setup", problems)
        page.get_by_label("Password", exact=True).fill("Short-pass-1")
        page.get_by_label("Repeat the password").fill("Short-pass-2")
        page.get_by_role("button", name="Create administrator").click()
        expect(
            page.locator("#admin-password2").locator("xpath=..").locator(".field-error")
        ).to_be_visible()
        message = (
            page.locator("#admin-password2")
            .locator("xpath=..")
            .locator(".field-error")
            .inner_text()
        )
        assert message
        expect(page.get_by_text(message, exact=True)).to_have_count(1)

        page.get_by_label("Repeat the password").fill("Short-pass-1")
        with page.expect_navigation():  # the wizard reloads itself at step 2
            page.get_by_role("button", name="Create administrator").click()
        expect(page.get_by_role("button", name="Save and finish")).to_be_visible()
        page.locator("#dest-kind").select_option("local")
        suggested = str((tmp_path / "data" / "local_backups").resolve())
        expect(page.locator("#dest-path")).to_have_attribute("placeholder", suggested)
        page.locator("#dest-path").fill(str(tmp_path / "backups"))
        held: list[Any] = []
        page.route("**/api/destinations/test", lambda route: held.append(route))
        page.get_by_role("button", name="Test connection").click()
        busy = page.get_by_role("button", name="Testing…")
        expect(busy).to_be_disabled()
        expect(busy).to_have_attribute("aria-busy", "true")
        held[0].continue_()
        expect(page.get_by_role("button", name="Test connection")).to_be_enabled()
        too_wide["/setup (destination)"] = overflow(page)
        audit(page, "/setup (destination)", problems)
        assert {where: wide for where, wide in too_wide.items() if wide} == {}
        assert {where: found for where, found in problems.items() if found} == {}
        assert missing.urls == []
        watch.assert_clean()
