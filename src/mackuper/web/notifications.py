"""Global alert channels: list, create, edit, delete, "Send test".

A channel is an Apprise URL (it holds tokens): stored encrypted, and the API only
says which service it is and that a URL is set. A blank URL on edit keeps it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from mackuper.models import NotificationChannel
from mackuper.notify import channels
from mackuper.notify.dispatch import CHANNEL_DEFAULT_EVENTS, Target, channel_events, deliver
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors, json_body
from mackuper.web.security import login_required
from mackuper.web.serialize import iso

logger = logging.getLogger(__name__)
blueprint = Blueprint("notifications", __name__, url_prefix="/api/notifications")

TEST_DEADLINE = 20.0


def channel_json(channel: NotificationChannel) -> dict[str, Any]:
    url = str(runtime().secrets.decrypt(channel.url_encrypted).get("url", ""))
    return {
        "id": channel.id,
        "name": channel.name,
        "service": channels.service_name(url),
        "url": "set" if url else "not set",
        "events": channel_events(channel),
        "enabled": channel.enabled,
        "created_at": iso(channel.created_at),
    }


def _events(payload: dict[str, Any]) -> dict[str, bool]:
    given = payload.get("events")
    events = dict(CHANNEL_DEFAULT_EVENTS)
    if isinstance(given, dict):
        events.update({name: bool(given[name]) for name in events if name in given})
    return events


def _validated(payload: dict[str, Any], stored_url: str) -> tuple[str, str]:
    """(name, url) from the form; a blank URL keeps `stored_url`."""
    errors: dict[str, str] = {}
    name = str(payload.get("name", "")).strip()
    if not name:
        errors["name"] = "Give the channel a name."
    elif len(name) > 100:
        errors["name"] = "Use at most 100 characters."
    url = str(payload.get("url") or "").strip() or stored_url
    problem = channels.check_url(url)
    if problem:
        errors["url"] = problem
    if errors:
        field_errors(errors)
    return name, url


def _get(channel_id: int) -> NotificationChannel:
    channel = get_db().get(NotificationChannel, channel_id)
    if channel is None:
        fail("No such channel.", 404)
    return channel


def _stored_url(channel: NotificationChannel) -> str:
    return str(runtime().secrets.decrypt(channel.url_encrypted).get("url", ""))


def _save(name: str) -> None:
    session = get_db()
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        field_errors({"name": f"A channel named {name!r} already exists."}, 409)


def _send_test(url: str) -> Response:
    base = runtime().settings.public_url
    title = "Mackuper: test message"
    body = f"This is a test from Mackuper at {base}. Alerts will reach you here."
    failures = deliver(
        [Target("the channel", lambda: channels.send(url, title, body, "info"))], TEST_DEADLINE
    )
    if failures:
        reason = failures[0].split(": ", 1)[-1].rstrip(".")
        fail(f"The test message could not be sent: {reason}.", 422)
    return jsonify(ok=True, message="Test message sent.")


@blueprint.get("/channels")
@login_required
def list_channels() -> Response:
    rows = get_db().scalars(select(NotificationChannel).order_by(NotificationChannel.name)).all()
    return jsonify(
        channels=[channel_json(row) for row in rows], events=list(CHANNEL_DEFAULT_EVENTS)
    )


@blueprint.post("/channels")
@login_required
def create_channel() -> tuple[Response, int]:
    payload = json_body()
    name, url = _validated(payload, "")
    channel = NotificationChannel(
        name=name,
        url_encrypted=runtime().secrets.encrypt({"url": url}),
        events=_events(payload),
        enabled=bool(payload.get("enabled", True)),
    )
    get_db().add(channel)
    _save(name)
    logger.info("notification channel %s (%s) created", name, channels.service_name(url))
    return jsonify(channel=channel_json(channel)), 201


@blueprint.get("/channels/<int:channel_id>")
@login_required
def get_channel(channel_id: int) -> Response:
    return jsonify(channel=channel_json(_get(channel_id)))


@blueprint.put("/channels/<int:channel_id>")
@login_required
def update_channel(channel_id: int) -> Response:
    channel = _get(channel_id)
    payload = json_body()
    name, url = _validated(payload, _stored_url(channel))
    channel.name = name
    channel.url_encrypted = runtime().secrets.encrypt({"url": url})
    channel.events = _events(payload)
    channel.enabled = bool(payload.get("enabled", True))
    _save(name)
    return jsonify(channel=channel_json(channel))


@blueprint.delete("/channels/<int:channel_id>")
@login_required
def delete_channel(channel_id: int) -> Response:
    session = get_db()
    session.delete(_get(channel_id))
    session.commit()
    return jsonify(ok=True)


@blueprint.post("/channels/<int:channel_id>/test")
@login_required
def test_saved(channel_id: int) -> Response:
    return _send_test(_stored_url(_get(channel_id)))


@blueprint.post("/test")
@login_required
def test_unsaved() -> Response:
    """Send a test to the URL in the form (or the stored one of `id` when blank)."""
    payload = json_body()
    stored = ""
    if isinstance(payload.get("id"), int):
        stored = _stored_url(_get(payload["id"]))
    url = str(payload.get("url") or "").strip() or stored
    problem = channels.check_url(url)
    if problem:
        field_errors({"url": problem})
    return _send_test(url)
