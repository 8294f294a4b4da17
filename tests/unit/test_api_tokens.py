"""Scripts authenticate with API tokens; tokens are shown once and stored hashed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask

from mackuper.models import ApiToken
from mackuper.runtime import Runtime
from tests.conftest import ApiClient


def _create_token(api: ApiClient) -> dict[str, object]:
    response = api.call("POST", "/api/tokens", {"name": "nightly script"})
    assert response.status_code == 201, response.get_data(as_text=True)
    created: dict[str, object] = response.get_json()
    return created


def test_a_token_authenticates_a_script_without_cookie_or_csrf(
    app: Flask, api: ApiClient, tmp_path: Path
) -> None:
    token = str(_create_token(api)["token"])
    assert token.startswith("mkp_")
    script = app.test_client(use_cookies=False)
    headers = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/jobs", headers=headers).status_code == 200
    created = script.post(
        "/api/destinations",
        json={"name": "Local", "kind": "local", "path": str(tmp_path), "test": False},
        headers=headers,
    )
    assert created.status_code == 201
    listed = api.call("GET", "/api/tokens").get_json()["tokens"]
    assert [entry["name"] for entry in listed] == ["nightly script"]
    assert listed[0]["last_used_at"] is not None
    assert "token" not in listed[0]


def test_a_revoked_or_wrong_token_is_refused(app: Flask, api: ApiClient) -> None:
    created = _create_token(api)
    script = app.test_client(use_cookies=False)
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert api.call("DELETE", f"/api/tokens/{created['id']}").status_code == 200
    refused = script.get("/api/jobs", headers=headers)
    assert refused.status_code == 401
    assert "not valid" in refused.get_json()["error"]
    wrong = script.post("/api/jobs", json={}, headers={"Authorization": "Bearer mkp_guess"})
    assert wrong.status_code == 401


def test_a_token_never_rides_on_a_browser_session(api: ApiClient) -> None:
    """A bearer header next to a session cookie is refused rather than guessed at."""
    response = api.client.get("/api/jobs", headers={"Authorization": "Bearer mkp_guess"})
    assert response.status_code == 401


def test_only_the_hash_of_a_token_is_stored(
    api: ApiClient, runtime: Runtime, data_dir: Path
) -> None:
    token = str(_create_token(api)["token"])
    runtime.engine.dispose()
    stored = b"".join(path.read_bytes() for path in data_dir.glob("mackuper.db*"))
    assert token.encode() not in stored
    assert b"nightly script" in stored


def test_an_expired_token_is_refused_with_a_clear_message(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    response = api.call("POST", "/api/tokens", {"name": "ci", "expires_in_days": 30})
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    script = app.test_client(use_cookies=False)
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert script.get("/api/jobs", headers=headers).status_code == 200

    with runtime.sessions.begin() as session:
        row = session.get_one(ApiToken, created["id"])
        row.expires_at = datetime.now(UTC) - timedelta(minutes=1)

    refused = script.get("/api/jobs", headers=headers)
    assert refused.status_code == 401
    message = refused.get_json()["error"]
    assert message.startswith("The API token 'ci' expired at ")
    assert "create a new one" in message
    assert created["token"] not in refused.get_data(as_text=True)
    listed = api.call("GET", "/api/tokens").get_json()["tokens"]
    assert listed[0]["expired"] is True


def test_the_token_list_shows_expiry_and_last_use(app: Flask, api: ApiClient) -> None:
    before = datetime.now(UTC)
    lasting = api.call("POST", "/api/tokens", {"name": "backup cron", "expires_in_days": 90})
    forever = api.call("POST", "/api/tokens", {"name": "dashboard", "expires_in_days": None})
    assert lasting.status_code == forever.status_code == 201
    script = app.test_client(use_cookies=False)
    headers = {"Authorization": f"Bearer {lasting.get_json()['token']}"}
    assert script.get("/api/jobs", headers=headers).status_code == 200

    listed = {entry["name"]: entry for entry in api.call("GET", "/api/tokens").get_json()["tokens"]}

    used, unused = listed["backup cron"], listed["dashboard"]
    expires_at = datetime.fromisoformat(used["expires_at"])
    assert before + timedelta(days=90) <= expires_at <= datetime.now(UTC) + timedelta(days=90)
    assert datetime.fromisoformat(used["last_used_at"]) >= before
    assert used["expired"] is False
    assert unused["expires_at"] is None and unused["last_used_at"] is None
    # The Settings page's table has a column for each.
    page = api.client.get("/settings").get_data(as_text=True)
    assert "<th>Last used</th>" in page and "<th>Expires</th>" in page
    assert 'id="token-expiry"' in page


def test_a_token_expiry_must_be_a_whole_number_of_days_from_1(api: ApiClient) -> None:
    for days in (0, -1, 3651, "30", 1.5, True):
        response = api.call("POST", "/api/tokens", {"name": "bad", "expires_in_days": days})
        assert response.status_code == 422, days
        assert response.get_json()["field"] == "expires_in_days"
    assert api.call("GET", "/api/tokens").get_json()["tokens"] == []
