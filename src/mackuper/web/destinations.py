"""Destinations API: list, create, edit, test, delete."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from mackuper.destinations import registry
from mackuper.destinations.base import Destination as Target
from mackuper.destinations.base import DestinationError, Lockable
from mackuper.models import Destination, job_destinations
from mackuper.schemas.answers import DestinationAnswer, DestinationsAnswer, OkAnswer
from mackuper.schemas.api import (
    DESTINATION_BODIES,
    DestinationBody,
    DestinationHead,
    DestinationKind,
)
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors, json_body, parse
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import destination_json

logger = logging.getLogger(__name__)
blueprint = Blueprint("destinations", __name__, url_prefix="/api/destinations")


def _settings(kind: str, stored: dict[str, Any]) -> DestinationHead:
    """The form's settings for `kind`, stored secrets filling blank ones; a 422 if wrong.

    Checked per kind (not as the document's tagged union) so error paths read
    `bucket`, not `s3.bucket`."""
    body: DestinationHead = parse(DESTINATION_BODIES[kind], {**json_body(), "kind": kind})
    body = body.keep_stored(stored)
    if problems := body.problems():
        field_errors(problems)
    return body


CONNECTED = "Connected: a test object was written, read back and deleted."


def _check(target: Target) -> str:
    """Put, get and delete a small object, then say how the bucket guards what it keeps
    (versioning, Object Lock); abort with the cause when it fails."""
    try:
        target.check_access()
        said = target.protection() if isinstance(target, Lockable) else []
    except DestinationError as error:
        fail(f"Connection test failed: {error}.", 422)
    return " ".join([CONNECTED, *said])


def _probe(body: DestinationHead) -> str:
    kind = str(getattr(body, "kind", ""))
    try:
        target = registry.build(kind, body.public(), body.secrets())
    except DestinationError as error:
        fail(f"Connection test failed: {error}.", 422)
    return _check(target)


def _sealed(secrets: dict[str, Any]) -> str | None:
    return runtime().secrets.encrypt(secrets) if secrets else None


def _saved(name: str) -> None:
    session = get_db()
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        field_errors({"name": f"A destination named {name!r} already exists."}, 409)


@blueprint.get("")
@login_required
@operation("List the destinations", responses={200: DestinationsAnswer})
def list_destinations() -> Response:
    rows = get_db().scalars(select(Destination).order_by(Destination.name)).all()
    return jsonify(destinations=[destination_json(row, runtime()) for row in rows])


@blueprint.post("")
@login_required
@operation(
    "Create a destination (after a write test unless test is false)",
    body=DestinationBody,
    parse_body=False,
    responses={201: DestinationAnswer},
)
def create_destination() -> tuple[Response, int]:
    kind = parse(DestinationKind, json_body()).kind
    settings = _settings(kind, {})
    if settings.test:
        _probe(settings)
    destination = Destination(
        name=settings.name,
        kind=kind,
        config=settings.public(),
        secrets_encrypted=_sealed(settings.secrets()),
    )
    get_db().add(destination)
    _saved(settings.name)
    logger.info("destination %s (%s) created", destination.name, destination.kind)
    return jsonify(destination=destination_json(destination, runtime())), 201


@blueprint.post("/test")
@login_required
@operation(
    "Test unsaved destination settings: write, read back and delete a small object",
    body=DestinationBody,
    parse_body=False,
    responses={200: OkAnswer},
)
def test_unsaved() -> Response:
    head: DestinationKind = parse(DestinationKind, json_body())
    stored: dict[str, Any] = {}
    if head.id is not None:
        row = get_db().get(Destination, head.id)
        if row is not None and row.kind == head.kind:
            stored = runtime().secrets.decrypt(row.secrets_encrypted)
    return jsonify(ok=True, message=_probe(_settings(head.kind, stored)))


def _get(destination_id: int) -> Destination:
    destination = get_db().get(Destination, destination_id)
    if destination is None:
        fail("No such destination.", 404)
    return destination


@blueprint.get("/<int:destination_id>")
@login_required
@operation("One destination", responses={200: DestinationAnswer})
def get_destination(destination_id: int) -> Response:
    return jsonify(destination=destination_json(_get(destination_id), runtime()))


@blueprint.put("/<int:destination_id>")
@login_required
@operation(
    "Change a destination; its kind stays, blank secrets are kept",
    body=DestinationBody,
    parse_body=False,
    responses={200: DestinationAnswer},
)
def update_destination(destination_id: int) -> Response:
    destination = _get(destination_id)
    stored = runtime().secrets.decrypt(destination.secrets_encrypted)
    settings = _settings(destination.kind, stored)
    if settings.test:
        _probe(settings)
    destination.name = settings.name
    destination.config = settings.public()
    destination.secrets_encrypted = _sealed(settings.secrets())
    _saved(settings.name)
    return jsonify(destination=destination_json(destination, runtime()))


@blueprint.post("/<int:destination_id>/test")
@login_required
@operation("Test a saved destination", responses={200: OkAnswer})
def test_saved(destination_id: int) -> Response:
    destination = _get(destination_id)
    try:
        target = registry.build(
            destination.kind,
            destination.config,
            runtime().secrets.decrypt(destination.secrets_encrypted),
        )
    except DestinationError as error:
        fail(f"Connection test failed: {error}.", 422)
    return jsonify(ok=True, message=_check(target))


@blueprint.delete("/<int:destination_id>")
@login_required
@operation("Delete a destination no job uses", responses={200: OkAnswer})
def delete_destination(destination_id: int) -> Response:
    destination = _get(destination_id)
    session = get_db()
    used = session.scalar(
        select(func.count())
        .select_from(job_destinations)
        .where(job_destinations.c.destination_id == destination_id)
    )
    if used:
        fail(f"{used} job(s) still write to this destination; change them first.", 409)
    session.delete(destination)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        fail("Backups stored at this destination are still recorded; it cannot be removed.", 409)
    return jsonify(ok=True)
