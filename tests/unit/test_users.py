"""Administrators manage users: disable (sessions and tokens stop), reset (sessions end),
delete (tokens go too), and never leave the installation without an administrator."""

from __future__ import annotations

from flask import Flask

from tests.conftest import ApiClient

PASSWORD = "Another-Horse-7"


def _create(admin: ApiClient, username: str, role: str = "operator") -> int:
    body = {"username": username, "password": PASSWORD, "role": role}
    response = admin.call("POST", "/api/users", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    user_id: int = response.get_json()["user"]["id"]
    return user_id


def _log_in(app: Flask, username: str, password: str = PASSWORD) -> tuple[ApiClient, int]:
    client = ApiClient(app.test_client())
    client.refresh_csrf("/login")
    response = client.call("POST", "/api/login", {"username": username, "password": password})
    client.refresh_csrf("/settings")
    return client, response.status_code


def test_a_disabled_user_is_logged_out_and_their_tokens_stop(app: Flask, api: ApiClient) -> None:
    otto_id = _create(api, "otto")
    otto, status = _log_in(app, "otto")
    assert status == 200
    token = otto.call("POST", "/api/tokens", {"name": "cron"}).get_json()["token"]
    script = app.test_client(use_cookies=False)
    bearer = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/jobs", headers=bearer).status_code == 200

    assert api.call("PUT", f"/api/users/{otto_id}", {"disabled": True}).status_code == 200

    assert otto.call("GET", "/api/jobs").status_code == 401
    refused = script.get("/api/jobs", headers=bearer)
    assert refused.status_code == 401
    assert "disabled user" in refused.get_json()["error"]
    _, status = _log_in(app, "otto")
    assert status == 401
    assert api.call("PUT", f"/api/users/{otto_id}", {"disabled": False}).status_code == 200
    assert _log_in(app, "otto")[1] == 200
    assert script.get("/api/jobs", headers=bearer).status_code == 200


def test_the_last_administrator_cannot_be_demoted_disabled_or_deleted(api: ApiClient) -> None:
    (admin,) = api.call("GET", "/api/users").get_json()["users"]
    for method, path, body in (
        ("PUT", f"/api/users/{admin['id']}", {"role": "operator"}),
        ("PUT", f"/api/users/{admin['id']}", {"disabled": True}),
        ("DELETE", f"/api/users/{admin['id']}", None),
    ):
        response = api.call(method, path, body)
        assert response.status_code == 409, (method, body)
        assert "at least one enabled administrator" in response.get_json()["error"]
    (unchanged,) = api.call("GET", "/api/users").get_json()["users"]
    assert unchanged == admin

    _create(api, "ada", "administrator")
    demoted = api.call("PUT", f"/api/users/{admin['id']}", {"role": "operator"})
    assert demoted.status_code == 200
    assert demoted.get_json()["user"]["role"] == "operator"
    assert api.call("GET", "/api/users").status_code == 403  # now an operator


def test_a_reset_ends_the_users_sessions_and_a_delete_removes_their_tokens(
    app: Flask, api: ApiClient
) -> None:
    otto_id = _create(api, "otto")
    otto, _ = _log_in(app, "otto")
    token = otto.call("POST", "/api/tokens", {"name": "cron"}).get_json()["token"]
    new = {"password": "Brand-New-Horse-3"}

    assert api.call("POST", f"/api/users/{otto_id}/password", new).status_code == 200

    assert otto.call("GET", "/api/jobs").status_code == 401
    assert _log_in(app, "otto")[1] == 401
    assert _log_in(app, "otto", new["password"])[1] == 200
    assert api.call("DELETE", f"/api/users/{otto_id}").status_code == 200
    script = app.test_client(use_cookies=False)
    assert script.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert [token["user"] for token in api.call("GET", "/api/tokens").get_json()["tokens"]] == []


def test_bad_user_input_is_refused_by_field_and_changes_nothing(api: ApiClient) -> None:
    _create(api, "otto")
    cases = [
        ({"username": "otto", "password": PASSWORD}, 409, "username"),
        ({"username": "x", "password": PASSWORD}, 422, "username"),
        ({"username": "vera", "password": "short"}, 422, "password"),
        ({"username": "vera", "password": PASSWORD, "role": "root"}, 422, "role"),
        ({"username": "vera", "password": PASSWORD, "restore_targets": ["relative"]}, 422, None),
    ]
    for body, status, field in cases:
        response = api.call("POST", "/api/users", body)
        assert response.status_code == status, (body, response.get_data(as_text=True))
        if field:
            assert field in response.get_json()["fields"], body
    names = [user["username"] for user in api.call("GET", "/api/users").get_json()["users"]]
    assert names == ["admin", "otto"]
    assert api.call("PUT", "/api/users/999", {"role": "viewer"}).status_code == 404
