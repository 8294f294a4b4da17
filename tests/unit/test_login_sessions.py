"""Issue 24 item 6: logging out ends the session on the server, so cookies copied
before logout (session or remember) are refused after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from mackuper.models import LoginSession
from mackuper.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD, ApiClient

SESSION_COOKIE = "mackuper_session"
REMEMBER_COOKIE = "remember_token"


def _logged_in(app: Flask, remember: bool = False) -> ApiClient:
    client = ApiClient(app.test_client())
    client.refresh_csrf("/login")
    response = client.call(
        "POST",
        "/api/login",
        {"username": "admin", "password": ADMIN_PASSWORD, "remember": remember},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return client


def _with_cookie(app: Flask, name: str, value: str) -> FlaskClient:
    """A new browser holding only the cookie `name` (copied from another)."""
    thief = app.test_client()
    thief.set_cookie(name, value)
    return thief


def _cookie(client: ApiClient, name: str) -> str:
    cookie = client.client.get_cookie(name)
    assert cookie is not None, name
    return cookie.value


def _sessions(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(LoginSession)) or 0


def test_a_session_cookie_copied_before_logout_is_refused_after_it(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    copied = _with_cookie(app, SESSION_COOKIE, _cookie(api, SESSION_COOKIE))
    assert copied.get("/api/jobs").status_code == 200
    assert _sessions(runtime) == 1

    assert api.call("POST", "/api/logout").status_code == 200

    assert _sessions(runtime) == 0
    refused = copied.get("/api/jobs")
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "Log in first."}
    page = copied.get("/jobs")
    assert page.status_code == 302
    assert page.headers["Location"].endswith("/login")


def test_a_remember_cookie_copied_before_logout_is_refused_after_it(
    app: Flask, api: ApiClient
) -> None:
    browser = _logged_in(app, remember=True)
    remember = _cookie(browser, REMEMBER_COOKIE)
    copied = _with_cookie(app, REMEMBER_COOKIE, remember)
    assert copied.get("/api/jobs").status_code == 200  # the remember cookie logs in alone

    assert browser.call("POST", "/api/logout").status_code == 200

    assert browser.client.get_cookie(REMEMBER_COOKIE) is None  # the browser's is deleted
    assert copied.get("/api/jobs").status_code == 401  # with the session it made
    fresh = _with_cookie(app, REMEMBER_COOKIE, remember)
    assert fresh.get("/api/jobs").status_code == 401
    page = fresh.get("/jobs")
    assert page.status_code == 302
    assert page.headers["Location"].endswith("/login")
    # Another browser's session (the api fixture's) is untouched.
    assert api.call("GET", "/api/jobs").status_code == 200


def test_the_remember_cookie_is_samesite_lax_httponly_and_lasts_30_days(
    app: Flask, api: ApiClient
) -> None:
    browser = _logged_in(app, remember=True)
    cookie = browser.client.get_cookie(REMEMBER_COOKIE)
    assert cookie is not None
    assert cookie.same_site == "Lax"
    assert cookie.http_only
    assert cookie.expires is not None
    lifetime = cookie.expires - datetime.now(UTC)
    assert timedelta(days=29) < lifetime <= timedelta(days=30)


def test_a_session_ends_on_the_server_when_its_time_is_up(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    with runtime.sessions.begin() as session:
        session.execute(
            update(LoginSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert api.call("GET", "/api/jobs").status_code == 401
    # The next login deletes the ended row.
    _logged_in(app)
    assert _sessions(runtime) == 1


def test_logging_in_again_ends_the_browser_previous_session(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    before = _with_cookie(app, SESSION_COOKIE, _cookie(api, SESSION_COOKIE))
    response = api.call("POST", "/api/login", {"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 200
    assert _sessions(runtime) == 1
    assert before.get("/api/jobs").status_code == 401
    assert api.call("GET", "/api/jobs").status_code == 200


def test_a_password_change_ends_remembered_sessions_elsewhere(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    elsewhere = _logged_in(app, remember=True)
    copied = _with_cookie(app, REMEMBER_COOKIE, _cookie(elsewhere, REMEMBER_COOKIE))
    changed = api.call(
        "POST",
        "/api/account/password",
        {"current_password": ADMIN_PASSWORD, "new_password": "Another-Horse-7"},
    )
    assert changed.status_code == 200
    assert copied.get("/api/jobs").status_code == 401
    assert elsewhere.call("GET", "/api/jobs").status_code == 401
    assert api.call("GET", "/api/jobs").status_code == 200
    assert _sessions(runtime) == 1
