"""Single sign-on against a real OpenID provider (oidc-provider from npm) on loopback.

Mackuper runs in process (Flask's test client); the provider is a node process. The
test walks the redirects a browser walks: Mackuper's /sso/login sends it to the
provider, the provider's login form is posted with requests, and the provider's
redirect back (code, state, iss) is given to Mackuper's callback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from mackuper.models import AuditEvent, Setting, SsoIdentity, User
from mackuper.runtime import Runtime
from mackuper.web.oidc import SSO_ONLY
from tests.conftest import ADMIN_PASSWORD, ApiClient
from tests.servers.oidc_provider import OidcProvider, running_oidc_provider, sign_in_at_provider

pytestmark = pytest.mark.integration

CALLBACK = "http://localhost/sso/callback"
"""Where Flask's test client says Mackuper is (url_for with _external)."""


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with running_oidc_provider([CALLBACK]) as server:
        yield server


def sso_settings(provider: OidcProvider, **changes: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "role_mapping": [
            {"group": "backup-operators", "role": "operator"},
            {"group": "backup-admins", "role": "administrator"},
        ],
        **changes,
    }


def configure(api: ApiClient, provider: OidcProvider, **changes: Any) -> dict[str, Any]:
    response = api.call("PUT", "/api/sso/settings", sso_settings(provider, **changes))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


def sign_in(app: Flask, login: str) -> tuple[ApiClient, Any]:
    """A fresh browser: "Sign in with SSO", the provider's form, back to the callback.
    Returns the client and the callback's response."""
    browser = ApiClient(app.test_client())
    start = browser.client.get("/sso/login")
    assert start.status_code == 302, start.get_data(as_text=True)
    authorize_url = start.headers["Location"]
    query = dict(part.split("=", 1) for part in urlsplit(authorize_url).query.split("&"))
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["state"] and query["nonce"]
    back = sign_in_at_provider(requests.Session(), authorize_url, login)
    assert back.startswith(CALLBACK + "?"), back
    response = browser.client.get(back.removeprefix("http://localhost"))
    return browser, response


def user_named(runtime: Runtime, name: str) -> User | None:
    with runtime.sessions() as session:
        return session.scalar(select(User).where(User.username == name))


def audit_entries(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_user_in_a_group_mapped_to_operator_signs_in_and_is_an_operator(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    configure(api, provider)
    assert "Sign in with SSO" in app.test_client().get("/login").get_data(as_text=True)

    browser, response = sign_in(app, "olivia")

    assert response.status_code == 302 and response.headers["Location"] == "/"
    olivia = user_named(runtime, "olivia")
    assert olivia is not None and olivia.role.value == "operator"
    # The session works, with the operator's rights and no more.
    browser.refresh_csrf("/jobs")
    assert browser.call("GET", "/api/jobs").status_code == 200
    assert browser.call("GET", "/api/users").status_code == 403
    with runtime.sessions() as session:
        identity = session.scalar(select(SsoIdentity).where(SsoIdentity.user_id == olivia.id))
        assert identity is not None
        assert (identity.issuer, identity.subject) == (provider.issuer, "olivia")
        assert identity.email == "olivia@example.org"
    listed = {user["username"]: user for user in api.call("GET", "/api/users").get_json()["users"]}
    assert listed["olivia"]["single_sign_on"] is True
    assert listed["admin"]["single_sign_on"] is False
    [entry] = audit_entries(runtime, "SSO login")
    assert entry.actor == "olivia" and entry.address == "127.0.0.1"
    assert entry.details["role"] == "operator"


def test_the_role_follows_the_mapping_at_each_login_and_the_account_stays_one_user(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    configure(api, provider)
    sign_in(app, "olivia")
    configure(api, provider, role_mapping=[{"group": "backup-operators", "role": "viewer"}])

    _browser, response = sign_in(app, "olivia")

    assert response.status_code == 302
    olivia = user_named(runtime, "olivia")
    assert olivia is not None and olivia.role.value == "viewer"
    with runtime.sessions() as session:
        assert len(session.scalars(select(SsoIdentity)).all()) == 1
        assert len(session.scalars(select(User)).all()) == 2  # admin and olivia


def test_an_account_in_no_mapped_group_is_refused_with_a_clear_message(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    configure(api, provider)

    browser, response = sign_in(app, "uma")

    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "in no group that has a role in Mackuper" in page
    assert "Sign in with SSO" in page
    assert user_named(runtime, "uma") is None
    assert browser.client.get("/api/jobs").status_code == 401
    [entry] = audit_entries(runtime, "SSO login failed")
    assert entry.details["reason"] == "no mapped group"
    assert entry.details["groups"] == ["staff", "marketing"]
    assert entry.address == "127.0.0.1"


def test_an_unmapped_account_gets_the_default_role_when_such_users_are_let_in(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    configure(api, provider, refuse_unmapped=False, default_role="viewer")

    _browser, response = sign_in(app, "uma")

    assert response.status_code == 302
    uma = user_named(runtime, "uma")
    assert uma is not None and uma.role.value == "viewer"


def test_sso_only_refuses_password_logins_except_the_break_glass_administrator(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    created = api.call(
        "POST", "/api/users", {"username": "lars", "password": "Local-Horse-3", "role": "operator"}
    )
    assert created.status_code == 201
    configure(api, provider, sso_only=True)
    assert "break-glass" in app.test_client().get("/login").get_data(as_text=True)

    lars = ApiClient(app.test_client())
    lars.refresh_csrf("/login")
    refused = lars.call("POST", "/api/login", {"username": "lars", "password": "Local-Horse-3"})
    admin = ApiClient(app.test_client())
    admin.refresh_csrf("/login")
    allowed = admin.call("POST", "/api/login", {"username": "admin", "password": ADMIN_PASSWORD})
    _browser, sso = sign_in(app, "olivia")

    assert refused.status_code == 403 and refused.get_json()["error"] == SSO_ONLY
    assert lars.client.get("/api/jobs").status_code == 401
    assert allowed.status_code == 200
    assert sso.status_code == 302
    failed = audit_entries(runtime, "login failed")
    assert [(entry.actor, entry.details["reason"]) for entry in failed] == [
        ("lars", "single sign-on only")
    ]


def test_an_administrator_from_sso_is_no_break_glass_account(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    configure(api, provider, sso_only=True)
    sign_in(app, "alice")
    alice = user_named(runtime, "alice")
    assert alice is not None and alice.role.value == "administrator"
    api.call("POST", f"/api/users/{alice.id}/password", {"password": "Alice-Local-9"})

    client = ApiClient(app.test_client())
    client.refresh_csrf("/login")
    response = client.call("POST", "/api/login", {"username": "alice", "password": "Alice-Local-9"})

    assert response.status_code == 403


def test_a_callback_with_a_forged_state_or_a_provider_error_is_refused_without_a_500(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    configure(api, provider)
    browser = ApiClient(app.test_client())
    browser.client.get("/sso/login")

    forged = browser.client.get("/sso/callback?code=abc&state=not-the-one")
    denied = browser.client.get(
        "/sso/callback?error=access_denied&error_description=End-User+aborted&state=x"
    )
    other_issuer = browser.client.get("/sso/callback?code=abc&state=x&iss=http://evil.example")

    assert forged.status_code == 400
    assert "expired or was started in another browser" in forged.get_data(as_text=True)
    assert denied.status_code == 403
    assert "refused the sign-in (access_denied: End-User aborted)" in denied.get_data(as_text=True)
    assert other_issuer.status_code == 400
    assert "another provider" in other_issuer.get_data(as_text=True)
    reasons = [entry.details["reason"] for entry in audit_entries(runtime, "SSO login failed")]
    assert reasons == ["state mismatch", "provider error access_denied", "issuer mismatch"]
    assert browser.client.get("/api/jobs").status_code == 401


def test_the_client_secret_is_encrypted_at_rest_and_never_shown_logged_or_audited(
    app: Flask,
    api: ApiClient,
    runtime: Runtime,
    provider: OidcProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = configure(api, provider)
    # A blank secret keeps the stored one (forms never show it).
    kept = configure(api, provider, client_secret="", scopes="openid email profile groups")
    _browser, response = sign_in(app, "olivia")

    shown = api.call("GET", "/api/sso/settings")
    assert shown.status_code == 200
    for text in (str(answer), str(kept), shown.get_data(as_text=True)):
        assert provider.client_secret not in text
    assert shown.get_json()["settings"]["secrets"] == {"client_secret": "set"}
    exported = api.call("GET", "/api/settings/export")
    assert exported.status_code == 200
    assert exported.get_json()["single_sign_on"]["issuer"] == provider.issuer
    assert exported.get_json()["single_sign_on"]["secrets"] == {"client_secret": "set"}
    assert provider.client_secret not in exported.get_data(as_text=True)
    assert shown.get_json()["redirect_uri"] == CALLBACK
    assert response.status_code == 302
    with runtime.sessions() as session:
        rows = {row.key: row.value for row in session.scalars(select(Setting))}
        assert provider.client_secret not in str(rows)
        changes = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "single sign-on settings changed")
        ).all()
        assert len(changes) == 2
        assert changes[0].details["client_secret"] == "(set)"
        assert changes[0].object == "single sign-on"
        assert all(provider.client_secret not in str(row.details) for row in changes)
    assert "SSO login" in caplog.text
    assert provider.client_secret not in caplog.text


def test_settings_whose_issuer_does_not_answer_or_differs_are_refused_and_not_saved(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    port = urlsplit(provider.issuer).port
    nowhere = api.call(
        "PUT", "/api/sso/settings", sso_settings(provider, issuer="http://127.0.0.1:9")
    )
    renamed = api.call(
        "PUT", "/api/sso/settings", sso_settings(provider, issuer=f"http://localhost:{port}")
    )
    incomplete = api.call("PUT", "/api/sso/settings", {"enabled": True, "client_id": ""})
    no_openid = api.call("PUT", "/api/sso/settings", sso_settings(provider, scopes="email"))

    assert nowhere.status_code == 422
    assert "discovery document" in nowhere.get_json()["fields"]["issuer"]
    assert renamed.status_code == 422
    assert "names the issuer" in renamed.get_json()["fields"]["issuer"]
    assert incomplete.status_code == 422
    assert "issuer URL and the client ID" in incomplete.get_json()["error"]
    assert no_openid.status_code == 422
    assert '"openid"' in no_openid.get_json()["error"]
    assert api.call("GET", "/api/sso/settings").get_json()["settings"]["enabled"] is False
    assert app.test_client().get("/sso/login").status_code == 404


def test_a_provider_account_never_takes_over_a_local_user_of_the_same_name(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    local = {"username": "olivia", "password": "Local-Horse-3", "role": "viewer"}
    assert api.call("POST", "/api/users", local).status_code == 201
    configure(api, provider)

    browser, response = sign_in(app, "olivia")

    assert response.status_code == 302
    with runtime.sessions() as session:
        users = {user.username: user for user in session.scalars(select(User))}
        identity = session.scalar(select(SsoIdentity))
    assert users["olivia"].role.value == "viewer"
    assert users["olivia-2"].role.value == "operator"
    assert identity is not None and identity.user_id == users["olivia-2"].id
    browser.refresh_csrf("/jobs")
    assert "olivia-2" in browser.client.get("/jobs").get_data(as_text=True)


def test_a_disabled_user_is_refused_at_the_next_sso_login(
    app: Flask, api: ApiClient, runtime: Runtime, provider: OidcProvider
) -> None:
    configure(api, provider)
    sign_in(app, "olivia")
    olivia = user_named(runtime, "olivia")
    assert olivia is not None
    assert api.call("PUT", f"/api/users/{olivia.id}", {"disabled": True}).status_code == 200

    browser, response = sign_in(app, "olivia")

    assert response.status_code == 403
    assert "Your Mackuper account is disabled" in response.get_data(as_text=True)
    assert browser.client.get("/api/jobs").status_code == 401
    [entry] = audit_entries(runtime, "SSO login failed")
    assert (entry.actor, entry.details["reason"]) == ("olivia", "disabled")
