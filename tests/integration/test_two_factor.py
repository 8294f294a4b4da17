"""Two-factor login through the API, in-process on a real SQLite database: an
authenticator app set up with a confirmed code, the login's second step (replayed codes
refused, recovery codes used once, counted by the login limits), removal with password
and code, the administrator's requirement, and audit entries that hold no secret."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select

from mackuper.models import AuditEvent, SsoIdentity, TotpSecret
from mackuper.runtime import Runtime
from mackuper.web import passkeys
from tests.conftest import ADMIN_PASSWORD, ApiClient

pytestmark = pytest.mark.integration

PASSWORD = "Operator-Horse-5"


def _new_client(app: Flask) -> ApiClient:
    client = ApiClient(app.test_client())
    client.refresh_csrf("/login")
    return client


def _password(client: ApiClient, username: str, password: str) -> Any:
    return client.call("POST", "/api/login", {"username": username, "password": password})


def _enrol(client: ApiClient) -> tuple[pyotp.TOTP, list[str]]:
    started = client.call("POST", "/api/account/totp")
    assert started.status_code == 200, started.get_data(as_text=True)
    secret = started.get_json()["secret"]
    assert started.get_json()["uri"].startswith("otpauth://totp/Mackuper:")
    totp = pyotp.TOTP(secret)
    wrong = client.call("POST", "/api/account/totp/confirm", {"code": "000000"})
    assert wrong.status_code == 422
    assert client.call("GET", "/api/account/two-factor").get_json()["totp"] is False
    confirmed = client.call("POST", "/api/account/totp/confirm", {"code": totp.now()})
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    codes: list[str] = confirmed.get_json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, codes


def _next_code(totp: pyotp.TOTP, steps: int = 1) -> str:
    """The code of a later time step (the window accepts one step of drift)."""
    return totp.at(time.time() + 30 * steps)


def _logged_in(client: ApiClient) -> bool:
    return client.call("GET", "/api/account/two-factor").status_code == 200


def _actions(runtime: Runtime) -> list[AuditEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_login_asks_for_the_app_code_and_refuses_a_replayed_one(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    totp, _codes = _enrol(api)
    with runtime.sessions() as session:
        stored = session.scalars(select(TotpSecret)).one()
        assert stored.confirmed_at is not None
        assert totp.secret not in stored.secret  # encrypted at rest
        assert runtime.secrets.decrypt(stored.secret)["totp"] == totp.secret

    browser = _new_client(app)
    answer = _password(browser, "admin", ADMIN_PASSWORD)
    assert answer.status_code == 200
    assert answer.get_json()["second_step"] == ["code"]
    assert not _logged_in(browser), "a password alone must not log in"

    # The code used to confirm the app is used up: replaying it fails.
    replayed = browser.call("POST", "/api/login/code", {"code": totp.now()})
    assert replayed.status_code == 401
    assert not _logged_in(browser)
    fresh = _next_code(totp)
    accepted = browser.call("POST", "/api/login/code", {"code": fresh})
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    assert _logged_in(browser)

    # The same code again, on another browser that knows the password: refused.
    other = _new_client(app)
    assert _password(other, "admin", ADMIN_PASSWORD).status_code == 200
    assert other.call("POST", "/api/login/code", {"code": fresh}).status_code == 401
    assert not _logged_in(other)

    events = _actions(runtime)
    failed = [event for event in events if event.action == "second step failed"]
    assert len(failed) == 2 and failed[0].actor == "admin" and failed[0].address
    logins = [event for event in events if event.action == "login"]
    assert logins[-1].details["second_factor"] == "authenticator app"
    added = [event for event in events if event.action == "authenticator app added"]
    assert len(added) == 1 and added[0].details == {"code": "(set)"}
    text = " ".join(f"{event.object} {event.details}" for event in events)
    assert totp.secret not in text and fresh not in text


def test_a_recovery_code_works_once(app: Flask, api: ApiClient, runtime: Runtime) -> None:
    _totp, codes = _enrol(api)
    first = _new_client(app)
    assert _password(first, "admin", ADMIN_PASSWORD).status_code == 200
    used = first.call("POST", "/api/login/code", {"code": codes[3].upper()})
    assert used.status_code == 200, used.get_data(as_text=True)
    assert _logged_in(first)
    assert first.call("GET", "/api/account/two-factor").get_json()["recovery_codes_left"] == 9

    second = _new_client(app)
    assert _password(second, "admin", ADMIN_PASSWORD).status_code == 200
    again = second.call("POST", "/api/login/code", {"code": codes[3]})
    assert again.status_code == 401
    assert not _logged_in(second)
    assert second.call("POST", "/api/login/code", {"code": codes[4]}).status_code == 200

    events = _actions(runtime)
    recovery = [event for event in events if event.action == "recovery code used"]
    assert [event.details for event in recovery] == [{"left": 9}, {"left": 8}]
    text = " ".join(f"{event.object} {event.details}" for event in events)
    assert not any(code in text for code in codes)


def test_the_login_limits_count_the_second_step(app: Flask, api: ApiClient) -> None:
    _enrol(api)
    browser = _new_client(app)
    assert _password(browser, "admin", ADMIN_PASSWORD).status_code == 200
    # Five attempts a window per name and address: the password's and four codes.
    for _ in range(4):
        assert browser.call("POST", "/api/login/code", {"code": "123456"}).status_code == 401
    refused = browser.call("POST", "/api/login/code", {"code": "123456"})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"]
    # Typing the password again buys no more guesses.
    assert _password(browser, "admin", ADMIN_PASSWORD).status_code == 429


def test_a_second_step_without_a_password_is_refused(app: Flask, api: ApiClient) -> None:
    totp, _codes = _enrol(api)
    stranger = _new_client(app)
    answer = stranger.call("POST", "/api/login/code", {"code": _next_code(totp)})
    assert answer.status_code == 409
    assert not _logged_in(stranger)


def test_removing_the_app_needs_the_password_and_a_code(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    totp, codes = _enrol(api)
    wrong_password = api.call(
        "POST", "/api/account/totp/disable", {"password": "nope", "code": _next_code(totp)}
    )
    assert wrong_password.status_code == 403
    wrong_code = api.call(
        "POST", "/api/account/totp/disable", {"password": ADMIN_PASSWORD, "code": "111111"}
    )
    assert wrong_code.status_code == 403
    assert api.call("GET", "/api/account/two-factor").get_json()["totp"] is True
    removed = api.call(
        "POST", "/api/account/totp/disable", {"password": ADMIN_PASSWORD, "code": codes[0]}
    )
    assert removed.status_code == 200, removed.get_data(as_text=True)
    status = api.call("GET", "/api/account/two-factor").get_json()
    assert status["totp"] is False and status["recovery_codes_left"] == 0

    browser = _new_client(app)
    answer = _password(browser, "admin", ADMIN_PASSWORD)
    assert answer.status_code == 200 and "second_step" not in answer.get_json()
    assert _logged_in(browser)
    removed_events = [e for e in _actions(runtime) if e.action == "authenticator app removed"]
    assert len(removed_events) == 1
    assert removed_events[0].details == {"code": "(set)", "password": "(set)"}


def test_required_two_factor_lets_a_user_only_enrol_until_they_have(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    created = api.call(
        "POST", "/api/users", {"username": "otto", "password": PASSWORD, "role": "operator"}
    )
    assert created.status_code == 201
    sam_created = api.call(
        "POST", "/api/users", {"username": "sso-sam", "password": PASSWORD, "role": "viewer"}
    )
    first = api.call("PUT", "/api/two-factor/policy", {"required": True})
    assert first.status_code == 409, "an administrator without 2FA would lock themselves out"
    _enrol(api)
    assert api.call("PUT", "/api/two-factor/policy", {"required": True}).status_code == 200
    assert api.call("GET", "/api/users").status_code == 200

    otto = _new_client(app)
    assert _password(otto, "otto", PASSWORD).status_code == 200
    blocked = otto.call("GET", "/api/jobs")
    assert blocked.status_code == 403
    assert "Set up two-factor login first" in blocked.get_json()["error"]
    page = otto.client.get("/jobs")
    assert page.status_code == 302 and page.headers["Location"].endswith("/account/two-factor")
    assert otto.client.get("/account/two-factor").status_code == 200

    # The last second factor cannot be removed while it is required.
    totp, _codes = _enrol(otto)
    assert otto.call("GET", "/api/jobs").status_code == 200
    kept = otto.call(
        "POST", "/api/account/totp/disable", {"password": PASSWORD, "code": _next_code(totp)}
    )
    assert kept.status_code == 409

    # A user who signs in through single sign-on is left to the provider's 2FA.
    with runtime.sessions.begin() as session:
        session.add(
            SsoIdentity(
                user_id=sam_created.get_json()["user"]["id"],
                issuer="https://id.example",
                subject="sam",
            )
        )
    sam = _new_client(app)
    assert _password(sam, "sso-sam", PASSWORD).status_code == 200
    assert sam.call("GET", "/api/jobs").status_code == 200

    assert api.call("PUT", "/api/two-factor/policy", {"required": False}).status_code == 200
    changes = [e for e in _actions(runtime) if e.action == "two-factor requirement changed"]
    assert [event.details for event in changes] == [{"required": True}, {"required": False}]


def test_passkeys_need_a_host_name_not_an_address(app: Flask, api: ApiClient) -> None:
    with (
        app.test_request_context(base_url="http://127.0.0.1:8080"),
        pytest.raises(passkeys.PasskeyError, match="not an IP address"),
    ):
        passkeys.relying_party()
    with app.test_request_context(base_url="http://backup.example:8080"):
        party = passkeys.relying_party()
    assert (party.id, party.origin) == ("backup.example", "http://backup.example:8080")

    answer = api.call("POST", "/api/account/passkeys/options")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    options = answer.get_json()
    assert options["rp"]["id"] == "localhost"
    assert options["user"]["name"] == "admin"
    assert options["excludeCredentials"] == []
