"""Scripts authenticate with API tokens; tokens are shown once and stored hashed."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

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
