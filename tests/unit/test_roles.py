"""Who may call what: every route of the URL map, called for real by every kind of caller.

`EXPECTED` below is the policy written a second time, as the issue states it; the
matrix test sends one request per (route, method) and caller and checks that the
access gate lets it through or refuses it as the policy says. A route that is in the
URL map but not in `EXPECTED` (or not in web/access.py's table) fails the test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask, jsonify
from werkzeug.wrappers import Response

from mackuper.runtime import Runtime
from mackuper.web import access, create_app
from tests.conftest import ADMIN_PASSWORD, ApiClient

PASSWORD = "Another-Horse-7"

EXPECTED: dict[str, str] = {
    "static": "public",
    "pages.health": "public",
    "pages.liveness": "public",
    "metrics.metrics": "public",
    "auth.login_page": "public",
    "auth.login": "public",
    "auth.setup_page": "public",
    "auth.setup_status": "public",
    "auth.setup_admin": "public",
    "auth.second_step_page": "public",
    "auth.second_step_code": "public",
    "auth.passkey_login_options": "public",
    "auth.passkey_login": "public",
    "sso.login": "public",
    "sso.callback": "public",
    "invitations.page": "public",
    "invitations.lookup_invitation": "public",
    "invitations.accept_invitation": "public",
    "auth.logout": "signed in",
    "auth.change_password": "signed in",
    "tokens.list_tokens": "signed in",
    "tokens.create_token": "signed in",
    "tokens.revoke_token": "signed in",
    "two_factor.page": "signed in",
    "two_factor.status": "signed in",
    "two_factor.start_totp": "signed in",
    "two_factor.confirm_totp": "signed in",
    "two_factor.disable_totp": "signed in",
    "two_factor.renew_recovery_codes": "signed in",
    "two_factor.passkey_options": "signed in",
    "two_factor.add_passkey": "signed in",
    "two_factor.remove_passkey": "signed in",
    "two_factor.get_policy": "administrator",
    "two_factor.set_policy": "administrator",
    "pages.dashboard": "viewer",
    "pages.history": "viewer",
    "pages.jobs": "viewer",
    "pages.run": "viewer",
    "pages.settings": "viewer",
    "pages.about": "viewer",
    "restore.page": "viewer",
    "openapi.reference_page": "viewer",
    "openapi.openapi_json": "viewer",
    "runs.dashboard": "viewer",
    "runs.list_runs": "viewer",
    "runs.get_run": "viewer",
    "runs.run_log": "viewer",
    "ui_api.chart": "viewer",
    "ui_api.jobs_overview": "viewer",
    "ui_api.estimate": "viewer",
    "ui_api.status": "viewer",
    "ui_api.workers": "viewer",
    "jobs.list_jobs": "viewer",
    "jobs.get_job": "viewer",
    "jobs.preview_schedule": "viewer",
    "jobs.preview_retention": "viewer",
    "anomalies.get_anomaly": "viewer",
    "anomalies.list_anomalies": "viewer",
    "job_alerts.get_alerts": "viewer",
    "destinations.list_destinations": "viewer",
    "destinations.get_destination": "viewer",
    "notifications.list_channels": "viewer",
    "notifications.get_channel": "viewer",
    "restore.list_backups": "viewer",
    "restore.get_backup": "viewer",
    "restore.backup_tree": "viewer",
    "restore.get_verify_schedule": "viewer",
    "installation_settings.get_settings": "viewer",
    "containers.get_engine": "viewer",
    "restore.download_backup": "download",
    "restore.download_url": "download",
    "restore.extract_from_backup": "download",
    "restore.extract_with_key": "download",
    "databases.download_dump": "download",
    "databases.download_dump_with_key": "download",
    "jobs.create_job": "operator",
    "jobs.update_job": "operator",
    "jobs.delete_job": "operator",
    "jobs.set_enabled": "operator",
    "jobs.run_now": "operator",
    "anomalies.acknowledge_anomaly": "operator",
    "job_alerts.update_alerts": "operator",
    "runs.cancel_run": "operator",
    "restore.start_restore": "operator",
    "restore.backup_tree_with_key": "operator",
    "restore.start_verify": "operator",
    "restore.set_verify_schedule": "operator",
    "restore.import_from_destination": "operator",
    "destinations.test_saved": "operator",
    "encryption.new_identity": "operator",
    "ssh.test_connection": "operator",
    "databases.test_connection": "operator",
    "databases.test_mariadb": "operator",
    "databases.test_sqlite": "operator",
    "databases.test_redis": "operator",
    "containers.list_containers": "operator",
    "auth.setup_finish": "administrator",
    "databases.start_database_restore": "administrator",
    "volume_restore.check_volume_target": "administrator",
    "volume_restore.start_volume_restore": "administrator",
    "destinations.create_destination": "administrator",
    "destinations.update_destination": "administrator",
    "destinations.delete_destination": "administrator",
    "destinations.test_unsaved": "administrator",
    "notifications.create_channel": "administrator",
    "notifications.update_channel": "administrator",
    "notifications.delete_channel": "administrator",
    "notifications.test_saved": "administrator",
    "notifications.test_unsaved": "administrator",
    "runs.clean_history": "administrator",
    "installation_settings.update_settings": "administrator",
    "containers.update_engine": "administrator",
    "containers.test_engine": "administrator",
    "safekeeping.export_configuration": "administrator",
    "safekeeping.master_key_origin": "administrator",
    "safekeeping.reveal_master_key": "administrator",
    "users.page": "administrator",
    "users.list_users": "administrator",
    "users.create_user": "administrator",
    "users.update_user": "administrator",
    "users.reset_password": "administrator",
    "users.delete_user": "administrator",
    "sso.get_settings": "administrator",
    "sso.update_settings": "administrator",
    "invitations.list_invitations": "administrator",
    "invitations.create_invitation": "administrator",
    "invitations.revoke_invitation": "administrator",
    "audit.page": "administrator",
    "audit.list_events": "administrator",
    "audit.export_events": "administrator",
    "audit.get_retention": "administrator",
    "audit.set_retention": "administrator",
}


@dataclass(frozen=True)
class Caller:
    """Who sends a request: by session cookie, by API token, or nobody."""

    name: str
    passes: frozenset[str]
    """The rules of EXPECTED this caller passes."""


ANYONE = frozenset({"public"})
SIGNED_IN = ANYONE | {"signed in", "viewer"}
VIEWER_DOWNLOADS = SIGNED_IN | {"download"}
OPERATOR = VIEWER_DOWNLOADS | {"operator"}
ADMINISTRATOR = OPERATOR | {"administrator"}

CALLERS = [
    Caller("anonymous", ANYONE),
    Caller("viewer", SIGNED_IN),
    Caller("viewer allowed to download", VIEWER_DOWNLOADS),
    Caller("operator", OPERATOR),
    Caller("administrator", ADMINISTRATOR),
    Caller("viewer token of an administrator", SIGNED_IN),
    Caller("operator token of an administrator", OPERATOR),
    Caller("administrator token", ADMINISTRATOR),
    Caller("operator token of a user demoted to viewer", SIGNED_IN),
]

ACCESS_REFUSALS = ("This needs the ", "Your account may not download", "no access rule")


def _url(rule: str) -> str:
    """An example URL of `rule`: ids no row has, so nothing real is changed or deleted."""
    url = rule.replace("<path:filename>", "js/app.js")
    return re.sub(r"<(?:int:)?[^>]+>", "999999", url)


def _routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) of every route of the URL map."""
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, _url(rule.rule)))
    return sorted(routes)


class Session:
    """One caller's client: a browser session (cookie and CSRF token) or a bearer token."""

    def __init__(self, api: ApiClient, token: str | None = None) -> None:
        self.api = api
        self.token = token

    def send(self, method: str, url: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if method != "GET" and not self.token:
            headers["X-CSRF-Token"] = self.api.csrf
        body = None if method == "GET" else {}
        return self.api.client.open(url, method=method, json=body, headers=headers)


def _create_user(admin: ApiClient, username: str, role: str, **extra: object) -> int:
    response = admin.call(
        "POST", "/api/users", {"username": username, "password": PASSWORD, "role": role, **extra}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    user_id: int = response.get_json()["user"]["id"]
    return user_id


def _log_in(app: Flask, username: str, password: str = PASSWORD) -> ApiClient:
    client = ApiClient(app.test_client())
    client.refresh_csrf("/login")
    response = client.call("POST", "/api/login", {"username": username, "password": password})
    assert response.status_code == 200, response.get_data(as_text=True)
    client.refresh_csrf("/settings")
    return client


def _token(client: ApiClient, role: str) -> str:
    response = client.call("POST", "/api/tokens", {"name": f"{role} script", "role": role})
    assert response.status_code == 201, response.get_data(as_text=True)
    token: str = response.get_json()["token"]
    return token


def _callers(app: Flask, admin: ApiClient) -> dict[str, Session]:
    _create_user(admin, "vera", "viewer")
    _create_user(admin, "dana", "viewer", can_download=True)
    _create_user(admin, "otto", "operator")
    _create_user(admin, "ada", "administrator")
    demoted = _create_user(admin, "olga", "operator")
    olga = _log_in(app, "olga")
    olga_token = _token(olga, "operator")
    assert admin.call("PUT", f"/api/users/{demoted}", {"role": "viewer"}).status_code == 200
    anonymous = ApiClient(app.test_client())
    anonymous.refresh_csrf("/login")
    script = ApiClient(app.test_client(use_cookies=False))
    return {
        "anonymous": Session(anonymous),
        "viewer": Session(_log_in(app, "vera")),
        "viewer allowed to download": Session(_log_in(app, "dana")),
        "operator": Session(_log_in(app, "otto")),
        "administrator": Session(_log_in(app, "ada")),
        "viewer token of an administrator": Session(script, _token(admin, "viewer")),
        "operator token of an administrator": Session(script, _token(admin, "operator")),
        "administrator token": Session(script, _token(admin, "administrator")),
        "operator token of a user demoted to viewer": Session(script, olga_token),
    }


def _allowed(response: Any) -> bool:
    """Whether the access gate let the request through (whatever the view answered)."""
    if response.status_code == 401:
        # The login itself answers 401 for a wrong password: it was let through.
        return "Wrong user name or password" in response.get_data(as_text=True)
    if response.status_code == 302 and response.headers["Location"].endswith("/login"):
        return False
    text = response.get_data(as_text=True)
    return not (response.status_code == 403 and any(part in text for part in ACCESS_REFUSALS))


def test_every_route_has_a_rule_in_the_table_and_in_this_test(app: Flask) -> None:
    endpoints = {endpoint for endpoint, _method, _url in _routes(app)}

    assert endpoints - set(access.RULES) == set(), "routes without an access rule"
    assert endpoints - set(EXPECTED) == set(), "routes missing from EXPECTED"
    assert {name: access.RULES[name].value for name in endpoints} == {
        name: EXPECTED[name] for name in endpoints
    }


def test_the_role_matrix_over_every_route_and_caller(app: Flask, api: ApiClient) -> None:
    sessions = _callers(app, api)
    mismatches = []
    routes = [route for route in _routes(app) if route[0] != "auth.logout"]
    for caller in CALLERS:
        session = sessions[caller.name]
        for endpoint, method, url in routes:
            expected = EXPECTED.get(endpoint, "missing") in caller.passes
            response = session.send(method, url)
            allowed = _allowed(response)
            response.close()
            if allowed != expected:
                mismatches.append(
                    f"{caller.name}: {method} {url} -> {response.status_code}, "
                    f"expected {'allow' if expected else 'deny'}"
                )
    # Logging out ends the sessions the matrix uses, so it goes last.
    for caller in CALLERS:
        expected = "signed in" in caller.passes
        if _allowed(sessions[caller.name].send("POST", "/api/logout")) != expected:
            mismatches.append(f"{caller.name}: POST /api/logout")
    assert mismatches == []


def test_a_route_added_without_a_rule_is_closed_and_fails_the_coverage_test(
    runtime: Runtime,
) -> None:
    app = create_app(runtime, {"TESTING": True})

    @app.get("/api/unruled")
    def unruled() -> Response:
        return jsonify(ok=True)

    api = ApiClient(app.test_client())
    api.refresh_csrf("/setup")
    setup = {"username": "admin", "password": ADMIN_PASSWORD}
    assert api.call("POST", "/api/setup/admin", setup).status_code == 201

    response = api.call("GET", "/api/unruled")

    assert response.status_code == 403
    assert "no access rule" in response.get_json()["error"]
    with pytest.raises(AssertionError, match="routes without an access rule"):
        test_every_route_has_a_rule_in_the_table_and_in_this_test(app)


def test_a_token_cannot_be_made_with_a_role_above_its_user(app: Flask, api: ApiClient) -> None:
    _create_user(api, "otto", "operator")
    otto = _log_in(app, "otto")

    response = otto.call("POST", "/api/tokens", {"name": "too much", "role": "administrator"})

    assert response.status_code == 403
    assert "higher than yours" in response.get_json()["fields"]["role"]
    listed = otto.call("GET", "/api/tokens").get_json()["tokens"]
    assert listed == []
    made = otto.call("POST", "/api/tokens", {"name": "mine"}).get_json()
    assert made["role"] == "operator" and made["user"] == "otto"
    assert ADMIN_PASSWORD not in str(made)
