"""Destinations API: list, create, edit, test, delete."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from mackuper.destinations import registry
from mackuper.destinations.base import DestinationError
from mackuper.models import Destination, job_destinations
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors, json_body
from mackuper.web.security import login_required
from mackuper.web.serialize import destination_json

logger = logging.getLogger(__name__)
blueprint = Blueprint("destinations", __name__, url_prefix="/api/destinations")


def _name(payload: dict[str, Any]) -> str:
    name = str(payload.get("name", "")).strip()
    if not name:
        field_errors({"name": "Give the destination a name."})
    if len(name) > 100:
        field_errors({"name": "Use at most 100 characters."})
    return name


def _validated(payload: dict[str, Any], existing: dict[str, str]) -> registry.Validated:
    kind = str(payload.get("kind", ""))
    result = registry.validate(kind, payload, existing)
    if result.errors:
        field_errors(result.errors)
    return result


def _probe(kind: str, result: registry.Validated) -> None:
    """Put, get and delete a small object; abort with the cause when it fails."""
    try:
        registry.build(kind, result.config, result.secrets).check_access()
    except DestinationError as error:
        fail(f"Connection test failed: {error}.", 422)


@blueprint.get("")
@login_required
def list_destinations() -> Response:
    rows = get_db().scalars(select(Destination).order_by(Destination.name)).all()
    return jsonify(destinations=[destination_json(row, runtime()) for row in rows])


@blueprint.post("")
@login_required
def create_destination() -> tuple[Response, int]:
    payload = json_body()
    name = _name(payload)
    result = _validated(payload, {})
    if payload.get("test", True):
        _probe(str(payload["kind"]), result)
    destination = Destination(
        name=name,
        kind=str(payload["kind"]),
        config=result.config,
        secrets_encrypted=runtime().secrets.encrypt(result.secrets) if result.secrets else None,
    )
    session = get_db()
    session.add(destination)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        field_errors({"name": f"A destination named {name!r} already exists."}, 409)
    logger.info("destination %s (%s) created", name, destination.kind)
    return jsonify(destination=destination_json(destination, runtime())), 201


@blueprint.post("/test")
@login_required
def test_unsaved() -> Response:
    payload = json_body()
    existing: dict[str, str] = {}
    if isinstance(payload.get("id"), int):
        stored = get_db().get(Destination, payload["id"])
        if stored is not None:
            existing = runtime().secrets.decrypt(stored.secrets_encrypted)
    result = _validated(payload, existing)
    _probe(str(payload["kind"]), result)
    return jsonify(ok=True, message="Connected: a test object was written, read back and deleted.")


def _get(destination_id: int) -> Destination:
    destination = get_db().get(Destination, destination_id)
    if destination is None:
        fail("No such destination.", 404)
    return destination


@blueprint.get("/<int:destination_id>")
@login_required
def get_destination(destination_id: int) -> Response:
    return jsonify(destination=destination_json(_get(destination_id), runtime()))


@blueprint.put("/<int:destination_id>")
@login_required
def update_destination(destination_id: int) -> Response:
    destination = _get(destination_id)
    payload = json_body()
    payload["kind"] = destination.kind
    name = _name(payload)
    existing = runtime().secrets.decrypt(destination.secrets_encrypted)
    result = _validated(payload, existing)
    if payload.get("test", True):
        _probe(destination.kind, result)
    destination.name = name
    destination.config = result.config
    destination.secrets_encrypted = (
        runtime().secrets.encrypt(result.secrets) if result.secrets else None
    )
    session = get_db()
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        field_errors({"name": f"A destination named {name!r} already exists."}, 409)
    return jsonify(destination=destination_json(destination, runtime()))


@blueprint.post("/<int:destination_id>/test")
@login_required
def test_saved(destination_id: int) -> Response:
    destination = _get(destination_id)
    try:
        registry.build(
            destination.kind,
            destination.config,
            runtime().secrets.decrypt(destination.secrets_encrypted),
        ).check_access()
    except DestinationError as error:
        fail(f"Connection test failed: {error}.", 422)
    return jsonify(ok=True, message="Connected: a test object was written, read back and deleted.")


@blueprint.delete("/<int:destination_id>")
@login_required
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
