"""Invitations: an administrator invites someone by a one-time link; they set their
own password, so no first password is ever handed over.

The link carries a random token after `#`, so browsers never send it to the server
in a URL (and it reaches no access log); the page posts it. Only its SHA-256 is
stored. A link is used once: accepting claims the row with one conditional UPDATE
(unused, not revoked, not expired), so two tabs cannot both create the user.
The user exists from the moment the link is accepted, with the invitation's role.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from typing import Any, NoReturn

from flask import Blueprint, jsonify, render_template, request, url_for
from flask_login import current_user, login_user
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from mackuper.models import Invitation, Role, User, utcnow
from mackuper.passwords import hash_password, password_problem
from mackuper.schemas.answers import LoggedIn, OkAnswer
from mackuper.schemas.sso import (
    AcceptInvitationBody,
    InvitationBody,
    InvitationLookupAnswer,
    InvitationLookupBody,
    InvitationsAnswer,
    NewInvitationAnswer,
)
from mackuper.web import audit, oidc
from mackuper.web.database import get_db
from mackuper.web.forms import fail, field_errors
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import iso
from mackuper.web.sessions import end_session, start_session
from mackuper.web.setup_state import setup_complete

logger = logging.getLogger(__name__)
blueprint = Blueprint("invitations", __name__)

NOT_VALID = (
    "This invitation link is not valid: it was used or withdrawn already, or it was "
    "copied incompletely. Ask an administrator for a new one."
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _state(invitation: Invitation) -> str:
    if invitation.used_at is not None:
        return "used"
    if invitation.revoked_at is not None:
        return "revoked"
    return "expired" if invitation.expires_at <= utcnow() else "pending"


def invitation_json(invitation: Invitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "username": invitation.username,
        "role": invitation.role.value,
        "can_download": invitation.can_download,
        "invited_by": invitation.invited_by,
        "created_at": iso(invitation.created_at),
        "expires_at": iso(invitation.expires_at),
        "state": _state(invitation),
    }


@blueprint.get("/api/invitations")
@login_required
@operation("List the invitations, newest first", responses={200: InvitationsAnswer})
def list_invitations() -> Response:
    rows = get_db().scalars(select(Invitation).order_by(Invitation.id.desc()).limit(200)).all()
    return jsonify(invitations=[invitation_json(row) for row in rows])


@blueprint.post("/api/invitations")
@login_required
@operation(
    "Invite a user: a one-time link (shown once) lets them set their password",
    body=InvitationBody,
    responses={201: NewInvitationAnswer},
)
def create_invitation(body: InvitationBody) -> tuple[Response, int]:
    session = get_db()
    if oidc.sso_only(session):
        fail(
            "This installation signs in with single sign-on only: people get their "
            "account at their first sign-in, so there is nobody to invite.",
            409,
        )
    if session.scalar(select(User.id).where(User.username == body.username)) is not None:
        field_errors({"username": "A user with this name exists already."}, 409)
    pending = session.scalars(select(Invitation).where(Invitation.username == body.username)).all()
    if any(_state(row) == "pending" for row in pending):
        field_errors(
            {"username": "This name has an open invitation; withdraw it to send a new one."},
            409,
        )
    token = secrets.token_urlsafe(32)
    now = utcnow()
    invitation = Invitation(
        username=body.username,
        role=Role(body.role),
        can_download=body.can_download,
        token_hash=_hash(token),
        invited_by=current_user.user.username,
        created_at=now,
        expires_at=now + timedelta(hours=body.expires_in_hours),
    )
    session.add(invitation)
    session.commit()
    logger.info("%s invited %s as %s", current_user.user.username, body.username, body.role)
    link = url_for("invitations.page", _external=True) + "#" + token
    return jsonify(invitation=invitation_json(invitation), link=link), 201


@blueprint.delete("/api/invitations/<int:invitation_id>")
@login_required
@operation("Withdraw an invitation: its link stops working", responses={200: OkAnswer})
def revoke_invitation(invitation_id: int) -> Response:
    session = get_db()
    invitation = session.get(Invitation, invitation_id)
    if invitation is None:
        fail("No such invitation.", 404)
    if _state(invitation) != "pending":
        fail(f"This invitation is {_state(invitation)} already.", 409)
    invitation.revoked_at = utcnow()
    session.commit()
    return jsonify(ok=True)


@blueprint.get("/invite")
def page() -> str:
    return render_template("invite.html")


def _refuse(invitation: Invitation | None) -> NoReturn:
    if invitation is not None and _state(invitation) == "expired":
        day = invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        fail(f"This invitation expired on {day}; ask an administrator for a new one.", 410)
    fail(NOT_VALID, 404)


def _find(token: str) -> Invitation:
    invitation = get_db().scalar(select(Invitation).where(Invitation.token_hash == _hash(token)))
    if invitation is None or _state(invitation) != "pending":
        _refuse(invitation)
    return invitation


@blueprint.post("/api/invitation")
@operation(
    "What an invitation link is for (the token is posted, never put in a URL)",
    body=InvitationLookupBody,
    responses={200: InvitationLookupAnswer},
    public=True,
)
def lookup_invitation(body: InvitationLookupBody) -> Response:
    invitation = _find(body.token)
    return jsonify(
        username=invitation.username,
        role=invitation.role.value,
        expires_at=iso(invitation.expires_at),
    )


@blueprint.post("/api/invitation/accept")
@operation(
    "Accept an invitation: set the password, create the user, log in",
    body=AcceptInvitationBody,
    responses={201: LoggedIn},
    public=True,
)
def accept_invitation(body: AcceptInvitationBody) -> tuple[Response, int]:
    invitation = _find(body.token)
    if problem := password_problem(body.password):
        field_errors({"password": problem})
    if body.password_confirm is not None and body.password_confirm != body.password:
        field_errors({"password_confirm": "The two passwords differ."})  # noqa: S106
    # Hashed before the claim: argon2id's CPU time must not hold the write lock.
    password_hash = hash_password(body.password)
    session = get_db()
    now = utcnow()
    claimed = session.execute(
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.used_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        _refuse(session.get(Invitation, invitation.id))
    user = User(
        username=invitation.username,
        password_hash=password_hash,
        role=invitation.role,
        can_download=invitation.can_download,
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        fail("A user with this name was created meanwhile; ask an administrator.", 409)
    if current_user.is_authenticated:
        end_session(session, current_user.session_id)
    login_user(start_session(session, user, remember=False))
    logger.info("%s accepted the invitation from %s", user.username, request.remote_addr)
    audit.record(
        "invitation accepted",
        f"user {user.username}",
        {"invitation_id": invitation.id, "role": user.role.value},
        actor=user.username,
    )
    return jsonify(ok=True, setup_complete=setup_complete()), 201
