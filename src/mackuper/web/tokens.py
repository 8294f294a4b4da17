"""API tokens for scripts: `Authorization: Bearer mkp_...`; only their SHA-256 is stored.

A request that carries a bearer token is authenticated by it alone (never by the
session cookie), and needs no CSRF token: a cross-site page cannot add the header.
A token may expire (`expires_in_days` at creation); an expired one is refused with a
message saying so, and the list shows when each token was last used.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta

from flask import Blueprint, g, jsonify, request
from flask_login import current_user
from sqlalchemy import select, update
from werkzeug.wrappers import Response

from mackuper.models import ApiToken, User
from mackuper.schemas.answers import NewToken, OkAnswer, TokensAnswer
from mackuper.schemas.api import TokenBody
from mackuper.web.database import get_db
from mackuper.web.forms import fail
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import iso
from mackuper.web.sessions import LoginUser

logger = logging.getLogger(__name__)
blueprint = Blueprint("tokens", __name__, url_prefix="/api/tokens")

PREFIX = "mkp_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
NOT_VALID = "The API token is not valid (revoked or mistyped)."


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token() -> str | None:
    """The bearer token of this request, or None when it carries none."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def user_for_bearer() -> LoginUser | None:
    """Flask-Login's request loader: the administrator, for a valid token."""
    token = bearer_token()
    if not token or not token.startswith(PREFIX):
        return None
    session = get_db()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or not hmac.compare_digest(row.token_hash, hash_token(token)):
        return None
    now = datetime.now(UTC)
    if row.expires_at is not None and row.expires_at <= now:
        g.bearer_refusal = (
            f"The API token {row.name!r} expired at {iso(row.expires_at)}; "
            "create a new one under Settings > API tokens."
        )
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        session.commit()
    user = session.scalar(select(User).order_by(User.id).limit(1))
    return LoginUser(user) if user is not None else None


def bearer_refusal() -> str:
    """Why this request's bearer token was refused (expired, or not valid)."""
    message: str = g.get("bearer_refusal", NOT_VALID)
    return message


def _json(token: ApiToken) -> dict[str, object]:
    expires_at = token.expires_at
    return {
        "id": token.id,
        "name": token.name,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "expires_at": iso(expires_at),
        "expired": expires_at is not None and expires_at <= datetime.now(UTC),
    }


@blueprint.get("")
@login_required
@operation("List the API tokens (never the tokens themselves)", responses={200: TokensAnswer})
def list_tokens() -> Response:
    rows = get_db().scalars(select(ApiToken).order_by(ApiToken.created_at)).all()
    return jsonify(tokens=[_json(row) for row in rows])


@blueprint.post("")
@login_required
@operation(
    "Create an API token; the answer is the only time it is shown",
    body=TokenBody,
    responses={201: NewToken},
)
def create_token(body: TokenBody) -> tuple[Response, int]:
    name = body.name
    token = PREFIX + secrets.token_urlsafe(32)
    expires_at = None
    if body.expires_in_days is not None:
        expires_at = datetime.now(UTC) + timedelta(days=body.expires_in_days)
    row = ApiToken(name=name, token_hash=hash_token(token), expires_at=expires_at)
    session = get_db()
    session.add(row)
    session.commit()
    logger.info("API token %r created by %s", name, current_user.user.username)
    return jsonify(token=token, shown_once=True, **_json(row)), 201


@blueprint.delete("/<int:token_id>")
@login_required
@operation("Revoke an API token", responses={200: OkAnswer})
def revoke_token(token_id: int) -> Response:
    session = get_db()
    row = session.get(ApiToken, token_id)
    if row is None:
        fail("No such token.", 404)
    session.delete(row)
    session.commit()
    logger.info("API token %r revoked", row.name)
    return jsonify(ok=True)
