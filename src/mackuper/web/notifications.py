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
from mackuper.schemas.answers import ChannelAnswer, ChannelsAnswer, OkAnswer
from mackuper.schemas.api import ChannelBody, ChannelTest
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors
from mackuper.web.operations import operation
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


def _url(body: ChannelBody | ChannelTest, stored_url: str) -> str:
    """The form's URL, or `stored_url` when it is blank; a 422 when Apprise cannot use it."""
    url = body.url or stored_url
    if problem := channels.check_url(url):
        field_errors({"url": problem})
    return url


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
@operation("List the global alert channels", responses={200: ChannelsAnswer})
def list_channels() -> Response:
    rows = get_db().scalars(select(NotificationChannel).order_by(NotificationChannel.name)).all()
    return jsonify(
        channels=[channel_json(row) for row in rows], events=list(CHANNEL_DEFAULT_EVENTS)
    )


@blueprint.post("/channels")
@login_required
@operation("Create a global alert channel", body=ChannelBody, responses={201: ChannelAnswer})
def create_channel(body: ChannelBody) -> tuple[Response, int]:
    url = _url(body, "")
    channel = NotificationChannel(
        name=body.name,
        url_encrypted=runtime().secrets.encrypt({"url": url}),
        events=body.events.model_dump(),
        enabled=body.enabled,
    )
    get_db().add(channel)
    _save(body.name)
    logger.info("notification channel %s (%s) created", body.name, channels.service_name(url))
    return jsonify(channel=channel_json(channel)), 201


@blueprint.get("/channels/<int:channel_id>")
@login_required
@operation("One global alert channel", responses={200: ChannelAnswer})
def get_channel(channel_id: int) -> Response:
    return jsonify(channel=channel_json(_get(channel_id)))


@blueprint.put("/channels/<int:channel_id>")
@login_required
@operation(
    "Change a global alert channel (a blank URL is kept)",
    body=ChannelBody,
    responses={200: ChannelAnswer},
)
def update_channel(channel_id: int, body: ChannelBody) -> Response:
    channel = _get(channel_id)
    url = _url(body, _stored_url(channel))
    channel.name = body.name
    channel.url_encrypted = runtime().secrets.encrypt({"url": url})
    channel.events = body.events.model_dump()
    channel.enabled = body.enabled
    _save(body.name)
    return jsonify(channel=channel_json(channel))


@blueprint.delete("/channels/<int:channel_id>")
@login_required
@operation("Delete a global alert channel", responses={200: OkAnswer})
def delete_channel(channel_id: int) -> Response:
    session = get_db()
    session.delete(_get(channel_id))
    session.commit()
    return jsonify(ok=True)


@blueprint.post("/channels/<int:channel_id>/test")
@login_required
@operation("Send a test message to a saved channel", responses={200: OkAnswer})
def test_saved(channel_id: int) -> Response:
    return _send_test(_stored_url(_get(channel_id)))


@blueprint.post("/test")
@login_required
@operation("Send a test message to an unsaved channel", body=ChannelTest, responses={200: OkAnswer})
def test_unsaved(body: ChannelTest) -> Response:
    """Send a test to the URL in the form (or the stored one of `id` when blank)."""
    stored = _stored_url(_get(body.id)) if body.id is not None and not body.url else ""
    return _send_test(_url(body, stored))
