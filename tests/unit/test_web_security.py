"""Issue 2's security promises, checked on the in-process app."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from mackuper.config import load_settings
from mackuper.models import Destination, User
from mackuper.runtime import Runtime, open_runtime
from mackuper.web import access, create_app
from mackuper.web.access import public_endpoints
from tests.conftest import ApiClient

ACCESS_KEY = "AKIAEXAMPLEACCESS1234"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY99"
PUBLIC = {
    "static",
    "pages.health",
    "pages.liveness",
    "metrics.metrics",
    "auth.login_page",
    "auth.login",
    "auth.setup_page",
    "auth.setup_status",
    "auth.setup_admin",
    "sso.login",
    "sso.callback",
    "invitations.page",
    "invitations.lookup_invitation",
    "invitations.accept_invitation",
    "auth.second_step_page",
    "auth.second_step_code",
    "auth.passkey_login_options",
    "auth.passkey_login",
}


def _example_url(rule: str) -> str:
    return re.sub(r"<(?:int:)?[^>]+>", "1", rule)


def _protected_rules(app: Flask) -> list[tuple[str, str, str]]:
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            rules.append((rule.endpoint, method, _example_url(rule.rule)))
    return rules


def _s3_destination(api: ApiClient) -> dict[str, object]:
    response = api.call(
        "POST",
        "/api/destinations",
        {
            "name": "Offsite",
            "kind": "s3",
            "bucket": "my-backups",
            "endpoint_url": "http://127.0.0.1:9",
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "test": False,
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    destination: dict[str, object] = response.get_json()["destination"]
    return destination


def test_only_the_intended_routes_are_public() -> None:
    assert public_endpoints() == PUBLIC


def test_every_protected_route_refuses_an_anonymous_request(api: ApiClient, app: Flask) -> None:
    # An anonymous visitor of the login page holds a valid CSRF token: with it sent,
    # only the login gate can refuse, so every state-changing route must answer 401
    # (a 400 would mean the CSRF check refused instead, hiding a missing gate).
    anonymous = ApiClient(app.test_client())
    anonymous.refresh_csrf("/login")
    assert anonymous.csrf
    rules = _protected_rules(app)
    assert len(rules) >= 20
    for endpoint, method, url in rules:
        headers = {"X-CSRF-Token": anonymous.csrf}
        response = anonymous.client.open(url, method=method, json={}, headers=headers)
        if url.startswith("/api/"):
            assert response.status_code == 401, (endpoint, method, response.status_code)
        else:
            assert response.status_code == 302, (endpoint, method)
            assert response.headers["Location"].endswith("/login")


def test_before_setup_every_protected_route_sends_to_the_wizard(client: FlaskClient) -> None:
    assert client.get("/").headers["Location"].endswith("/setup")
    response = client.get("/api/jobs")
    assert response.status_code == 409
    assert response.get_json() == {"error": "Finish the setup wizard first."}


def test_a_post_without_csrf_token_is_refused_and_changes_nothing(
    api: ApiClient, runtime: Runtime
) -> None:
    body = {"name": "Local", "kind": "local", "path": "/tmp/x", "test": False}
    response = api.client.post("/api/destinations", json=body)
    assert response.status_code == 400
    assert "security token" in response.get_json()["error"]
    wrong = api.client.post("/api/destinations", json=body, headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 400
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Destination)) == 0
    assert api.call("POST", "/api/destinations", body).status_code == 201


def test_the_setup_wizard_creates_one_administrator_only(api: ApiClient) -> None:
    again = api.call("POST", "/api/setup/admin", {"username": "mallory", "password": "Xx1xxxxxxx"})
    assert again.status_code == 409


def test_weak_passwords_are_refused_with_a_message(client: FlaskClient) -> None:
    helper = ApiClient(client)
    helper.refresh_csrf("/setup")
    response = helper.call("POST", "/api/setup/admin", {"username": "admin", "password": "short"})
    assert response.status_code == 422
    assert "upper-case" in response.get_json()["fields"]["password"]


def test_secrets_never_appear_in_api_responses(api: ApiClient, tmp_path: Path) -> None:
    destination = _s3_destination(api)
    assert destination["secrets"] == {
        "access_key_id": "set",
        "secret_access_key": "set",
        # The optional key used only for deleting (issue 19): not given here.
        "delete_access_key_id": "not set",
        "delete_secret_access_key": "not set",
    }
    job = api.call(
        "POST",
        "/api/jobs",
        {
            "name": "docs",
            "source": {"paths": [str(tmp_path)]},
            "destination_ids": [destination["id"]],
        },
    )
    assert job.status_code == 201
    for url in ["/api/destinations", f"/api/destinations/{destination['id']}", "/api/jobs"]:
        text = api.call("GET", url).get_data(as_text=True)
        assert SECRET_KEY not in text and ACCESS_KEY not in text, url
    # A failing connection test names the cause, never the key.
    failed = api.call("POST", f"/api/destinations/{destination['id']}/test")
    assert failed.status_code == 422
    assert "unreachable" in failed.get_json()["error"]
    assert SECRET_KEY not in failed.get_data(as_text=True)


def test_secrets_cannot_be_found_in_the_database_files(
    api: ApiClient, runtime: Runtime, data_dir: Path
) -> None:
    _s3_destination(api)
    runtime.engine.dispose()
    stored = b"".join(path.read_bytes() for path in data_dir.glob("mackuper.db*"))
    assert b"my-backups" in stored  # the row is there...
    for secret in (SECRET_KEY, ACCESS_KEY):
        assert secret.encode() not in stored  # ...but not its secrets
    logs = (
        b"".join(path.read_bytes() for path in (data_dir / "logs").glob("*"))
        if (data_dir / "logs").exists()
        else b""
    )
    assert SECRET_KEY.encode() not in logs


def test_editing_a_destination_with_blank_secrets_keeps_them(
    api: ApiClient, runtime: Runtime
) -> None:
    destination = _s3_destination(api)
    response = api.call(
        "PUT",
        f"/api/destinations/{destination['id']}",
        {"name": "Renamed", "bucket": "my-backups", "test": False},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    with runtime.sessions() as session:
        row = session.get_one(Destination, destination["id"])
        secrets = runtime.secrets.decrypt(row.secrets_encrypted)
    assert secrets == {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}


def test_login_is_rate_limited(client: FlaskClient, api: ApiClient) -> None:
    api.call("POST", "/api/logout")
    api.refresh_csrf("/login")
    codes = [
        api.call(
            "POST", "/api/login", {"username": "admin", "password": "Wrong-pass-1"}
        ).status_code
        for _ in range(6)
    ]
    assert codes == [401] * 5 + [429]
    blocked = api.call("POST", "/api/login", {"username": "admin", "password": "Correct-Horse-9"})
    assert blocked.status_code == 429
    assert "try again" in blocked.get_json()["error"]


def test_changing_the_password_ends_other_sessions(app: Flask, api: ApiClient) -> None:
    other = ApiClient(app.test_client())
    other.refresh_csrf("/login")
    assert (
        other.call(
            "POST", "/api/login", {"username": "admin", "password": "Correct-Horse-9"}
        ).status_code
        == 200
    )
    assert other.call("GET", "/api/jobs").status_code == 200
    changed = api.call(
        "POST",
        "/api/account/password",
        {"current_password": "Correct-Horse-9", "new_password": "Another-Horse-7"},
    )
    assert changed.status_code == 200
    assert api.call("GET", "/api/jobs").status_code == 200
    assert other.call("GET", "/api/jobs").status_code == 401


def test_pages_carry_a_strict_content_security_policy(api: ApiClient) -> None:
    response = api.client.get("/jobs")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "<script>" not in response.get_data(as_text=True)


def test_session_cookie_is_httponly_and_samesite(client: FlaskClient) -> None:
    client.get("/setup")
    cookie = client.get_cookie("mackuper_session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"


def _run_cli(data_dir: Path, key: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"MACKUPER_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    if key is not None:
        env["MACKUPER_MASTER_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "mackuper", *args], env=env, capture_output=True, text=True
    )


def test_a_wrong_master_key_stops_start_up_and_changes_nothing(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    right, wrong = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    data_dir = tmp_path / "data"
    first = _run_cli(data_dir, right, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    settings = load_settings({"MACKUPER_DATA_DIR": str(data_dir), "MACKUPER_MASTER_KEY": right})
    runtime = open_runtime(settings)
    with runtime.sessions.begin() as session:
        session.add(User(username="admin", password_hash="x"))
    runtime.engine.dispose()
    before = {path.name: path.read_bytes() for path in data_dir.glob("mackuper.db*")}

    refused = _run_cli(data_dir, wrong, "db", "upgrade")

    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "mackuper: MACKUPER_MASTER_KEY is not the master key this database was created with;"
        " start with the original key (nothing was changed)"
    ]
    assert {path.name: path.read_bytes() for path in data_dir.glob("mackuper.db*")} == before
    assert not (data_dir / "master.key").exists()


def test_a_missing_key_file_is_not_silently_replaced(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert _run_cli(data_dir, None, "db", "upgrade").returncode == 0
    key_file = data_dir / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.unlink()
    refused = _run_cli(data_dir, None, "db", "upgrade")
    assert refused.returncode == 2
    assert "master key file" in refused.stderr and "is missing" in refused.stderr
    assert not key_file.exists()


def test_a_bad_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    env = {"MACKUPER_DATA_DIR": str(tmp_path), "PORT": "eighty", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "mackuper", "serve"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "mackuper: configuration error: PORT='eighty' is not a whole number"
    )


def test_unexpected_errors_reach_the_user_as_a_plain_message(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(runtime, {"TESTING": True, "PROPAGATE_EXCEPTIONS": False})
    for endpoint in ("pages.health_explode", "pages.explode"):
        monkeypatch.setitem(access.RULES, endpoint, access.VIEWER)

    def explode() -> str:
        raise RuntimeError("secret internals")

    app.add_url_rule("/api/explode", "pages.health_explode", explode)
    app.add_url_rule("/explode", "pages.explode", explode)
    client = app.test_client()
    helper = ApiClient(client)
    helper.refresh_csrf("/setup")
    helper.call("POST", "/api/setup/admin", {"username": "admin", "password": "Correct-Horse-9"})
    helper.call("POST", "/api/setup/finish")

    response = client.get("/api/explode")
    page = client.get("/explode")

    assert response.status_code == 500
    assert response.get_json() == {
        "error": "Something went wrong on the server; the details are in the server log."
    }
    assert page.status_code == 500
    assert "secret internals" not in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)
