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

from mackuper.models import ApiToken, Role, User
from mackuper.schemas.answers import NewToken, OkAnswer, TokensAnswer
from mackuper.schemas.api import TokenBody
from mackuper.web.access import current_role
from mackuper.web.database import get_db
from mackuper.web.forms import fail, field_errors
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
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        g.bearer_refusal = f"The API token {row.name!r} belongs to a disabled user."
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        session.commit()
    return LoginUser(user, role=row.role)


def bearer_refusal() -> str:
    """Why this request's bearer token was refused (expired, or not valid)."""
    message: str = g.get("bearer_refusal", NOT_VALID)
    return message


def _json(token: ApiToken, username: str) -> dict[str, object]:
    expires_at = token.expires_at
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role.value,
        "user": username,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "expires_at": iso(expires_at),
        "expired": expires_at is not None and expires_at <= datetime.now(UTC),
    }


@blueprint.get("")
@login_required
@operation(
    "List the API tokens: your own, or everyone's for an administrator (never the tokens)",
    responses={200: TokensAnswer},
)
def list_tokens() -> Response:
    statement = (
        select(ApiToken, User.username)
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.created_at)
    )
    if current_role() is not Role.ADMINISTRATOR:
        statement = statement.where(ApiToken.user_id == current_user.user.id)
    rows = get_db().execute(statement).all()
    return jsonify(tokens=[_json(row, username) for row, username in rows])


@blueprint.post("")
@login_required
@operation(
    "Create an API token; the answer is the only time it is shown",
    body=TokenBody,
    responses={201: NewToken},
)
def create_token(body: TokenBody) -> tuple[Response, int]:
    name = body.name
    acting: Role = current_user.role
    role = Role(body.role) if body.role is not None else acting
    if not acting.at_least(role):
        field_errors({"role": f"A token's role cannot be higher than yours ({acting})."}, 403)
    token = PREFIX + secrets.token_urlsafe(32)
    expires_at = None
    if body.expires_in_days is not None:
        expires_at = datetime.now(UTC) + timedelta(days=body.expires_in_days)
    user: User = current_user.user
    row = ApiToken(
        name=name, token_hash=hash_token(token), expires_at=expires_at, user_id=user.id, role=role
    )
    session = get_db()
    session.add(row)
    session.commit()
    logger.info("API token %r (%s) created by %s", name, role, user.username)
    return jsonify(token=token, shown_once=True, **_json(row, user.username)), 201


@blueprint.delete("/<int:token_id>")
@login_required
@operation("Revoke an API token", responses={200: OkAnswer})
def revoke_token(token_id: int) -> Response:
    session = get_db()
    row = session.get(ApiToken, token_id)
    mine = row is not None and row.user_id == current_user.user.id
    if row is None or not (mine or current_role() is Role.ADMINISTRATOR):
        fail("No such token.", 404)
    session.delete(row)
    session.commit()
    logger.info("API token %r revoked", row.name)
    return jsonify(ok=True)
