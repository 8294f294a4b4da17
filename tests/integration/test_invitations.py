"""Invitations: an administrator invites, the invited person sets a password through a
one-time link; used, withdrawn and expired links are refused; every step is audited."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from mackuper import installation
from mackuper.models import AuditEvent, Invitation, User, utcnow
from mackuper.runtime import Runtime
from mackuper.web import invitations, oidc
from mackuper.web.invitations import NOT_VALID
from tests.conftest import ApiClient
from tests.integration.write_lock import another_writer

pytestmark = pytest.mark.integration

PASSWORD = "Invited-Horse-4"


def invite(api: ApiClient, username: str = "ivy", **extra: Any) -> tuple[int, str]:
    response = api.call("POST", "/api/invitations", {"username": username, **extra})
    assert response.status_code == 201, response.get_data(as_text=True)
    answer = response.get_json()
    link: str = answer["link"]
    assert link.startswith("http://localhost/invite#")
    return int(answer["invitation"]["id"]), link.split("#", 1)[1]


def visitor(app: Flask) -> ApiClient:
    """A browser that opened the invitation page (for its CSRF token)."""
    client = ApiClient(app.test_client())
    client.refresh_csrf("/invite")
    return client


def accept(client: ApiClient, token: str, password: str = PASSWORD) -> Any:
    body = {"token": token, "password": password, "password_confirm": password}
    return client.call("POST", "/api/invitation/accept", body)


def test_an_invited_person_sets_a_password_once_and_has_the_invited_role(
    app: Flask, api: ApiClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    invitation_id, token = invite(api, role="operator", expires_in_hours=48)
    [listed] = api.call("GET", "/api/invitations").get_json()["invitations"]
    assert (listed["username"], listed["role"], listed["state"]) == ("ivy", "operator", "pending")
    page = visitor(app)
    assert page.client.get("/invite").status_code == 200

    looked_up = page.call("POST", "/api/invitation", {"token": token})
    weak = accept(page, token, "short")
    accepted = accept(page, token)
    again = accept(visitor(app), token)

    assert looked_up.status_code == 200
    assert looked_up.get_json()["username"] == "ivy"
    assert looked_up.get_json()["role"] == "operator"
    assert weak.status_code == 422 and "password" in weak.get_json()["fields"]
    assert accepted.status_code == 201, accepted.get_data(as_text=True)
    page.refresh_csrf("/jobs")
    assert page.call("GET", "/api/jobs").status_code == 200
    assert page.call("GET", "/api/users").status_code == 403
    assert again.status_code == 404 and again.get_json()["error"] == NOT_VALID
    with runtime.sessions() as session:
        ivy = session.scalar(select(User).where(User.username == "ivy"))
        assert ivy is not None and ivy.role.value == "operator"
    [listed] = api.call("GET", "/api/invitations").get_json()["invitations"]
    assert listed["state"] == "used"
    # The password works for a normal login too.
    login = visitor(app)
    login.refresh_csrf("/login")
    answer = login.call("POST", "/api/login", {"username": "ivy", "password": PASSWORD})
    assert answer.status_code == 200
    with runtime.sessions() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    invited = [event for event in events if event.action == "user invited"]
    assert [(event.actor, event.object) for event in invited] == [
        ("admin", f"invitation {invitation_id} ivy")
    ]
    assert invited[0].details["role"] == "operator"
    accepted_events = [event for event in events if event.action == "invitation accepted"]
    assert [(event.actor, event.address) for event in accepted_events] == [("ivy", "127.0.0.1")]
    everything = json.dumps([event.details for event in events]) + caplog.text
    assert token not in everything
    assert PASSWORD not in everything


def test_the_password_is_hashed_before_the_invitation_is_claimed(
    app: Flask, api: ApiClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2id costs a noticeable part of a second of CPU; hashed after the claim's
    UPDATE, it kept SQLite's write lock (and so every worker's write) waiting."""
    _, token = invite(api)
    hash_password = invitations.hash_password
    with another_writer(runtime) as write_now:

        def hashed_with_the_lock_free(password: str) -> str:
            write_now()  # raises when the request holds the write lock
            return hash_password(password)

        monkeypatch.setattr(invitations, "hash_password", hashed_with_the_lock_free)
        accepted = accept(visitor(app), token)
    assert accepted.status_code == 201, accepted.get_data(as_text=True)
    with runtime.sessions() as session:
        user = session.scalars(select(User).where(User.username == "ivy")).one()
    assert user.password_hash.startswith("$argon2id$")


def test_an_expired_link_is_refused_and_creates_nobody(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    invitation_id, token = invite(api, expires_in_hours=1)
    with runtime.sessions.begin() as session:
        session.execute(
            update(Invitation)
            .where(Invitation.id == invitation_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    page = visitor(app)

    looked_up = page.call("POST", "/api/invitation", {"token": token})
    accepted = accept(page, token)

    assert looked_up.status_code == 410 and "expired on" in looked_up.get_json()["error"]
    assert accepted.status_code == 410
    assert page.client.get("/api/jobs").status_code == 401
    with runtime.sessions() as session:
        assert session.scalar(select(User).where(User.username == "ivy")) is None
    [listed] = api.call("GET", "/api/invitations").get_json()["invitations"]
    assert listed["state"] == "expired"


def test_a_withdrawn_or_mistyped_link_is_refused(app: Flask, api: ApiClient) -> None:
    invitation_id, token = invite(api)
    assert api.call("DELETE", f"/api/invitations/{invitation_id}").status_code == 200
    page = visitor(app)

    withdrawn = accept(page, token)
    mistyped = accept(page, token[:-2] + "xx")
    twice = api.call("DELETE", f"/api/invitations/{invitation_id}")
    missing = api.call("DELETE", "/api/invitations/999999")

    assert withdrawn.status_code == 404 and withdrawn.get_json()["error"] == NOT_VALID
    assert mistyped.status_code == 404
    assert twice.status_code == 409 and "revoked already" in twice.get_json()["error"]
    assert missing.status_code == 404
    entries = api.call("GET", "/api/audit?action=invitation%20withdrawn").get_json()["events"]
    assert [entry["object"] for entry in entries] == [f"invitation {invitation_id}"]


def test_a_taken_name_an_open_invitation_or_bad_input_is_refused(
    api: ApiClient,
) -> None:
    invite(api, "ivy")

    taken = api.call("POST", "/api/invitations", {"username": "admin"})
    open_already = api.call("POST", "/api/invitations", {"username": "ivy"})
    bad_name = api.call("POST", "/api/invitations", {"username": "a b"})
    too_long = api.call("POST", "/api/invitations", {"username": "zed", "expires_in_hours": 10_000})
    bad_role = api.call("POST", "/api/invitations", {"username": "zed", "role": "root"})

    assert taken.status_code == 409 and "exists already" in taken.get_json()["fields"]["username"]
    assert open_already.status_code == 409
    assert "open invitation" in open_already.get_json()["fields"]["username"]
    for response in (bad_name, too_long, bad_role):
        assert response.status_code == 422, response.get_data(as_text=True)
    assert len(api.call("GET", "/api/invitations").get_json()["invitations"]) == 1


def test_nobody_is_invited_when_everyone_signs_in_with_sso(
    api: ApiClient, runtime: Runtime
) -> None:
    with runtime.sessions.begin() as session:
        settings = {"enabled": True, "issuer": "https://id.example", "client_id": "m"}
        installation.write(session, oidc.SETTINGS_KEY, json.dumps({**settings, "sso_only": True}))

    response = api.call("POST", "/api/invitations", {"username": "ivy"})

    assert response.status_code == 409
    assert "single sign-on only" in response.get_json()["error"]
