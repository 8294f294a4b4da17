"""Users, managed by administrators: create, change role, disable, reset, delete.

There is always at least one enabled administrator: a change that would leave none
(demoting, disabling or deleting the last one) is refused, so nobody locks the
installation out of its own settings. Disabling a user, or resetting their password,
ends their sessions at once; their API tokens stop working while they are disabled.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, render_template
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from mackuper.models import Role, SsoIdentity, User
from mackuper.passwords import hash_password, password_problem
from mackuper.schemas.answers import OkAnswer
from mackuper.schemas.users import (
    NewUserBody,
    ResetPasswordBody,
    UserAnswer,
    UserChangeBody,
    UsersAnswer,
)
from mackuper.web.database import get_db
from mackuper.web.forms import fail, field_errors
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import iso
from mackuper.web.sessions import end_other_sessions

logger = logging.getLogger(__name__)
blueprint = Blueprint("users", __name__)

LAST_ADMINISTRATOR = "Keep at least one enabled administrator: make another one first."


def user_json(user: User, single_sign_on: bool | None = None) -> dict[str, Any]:
    """`single_sign_on`: whether the user signs in through the OpenID provider
    (looked up when not given)."""
    if single_sign_on is None:
        found = select(SsoIdentity.id).where(SsoIdentity.user_id == user.id).limit(1)
        single_sign_on = get_db().scalar(found) is not None
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role.value,
        "disabled": user.disabled,
        "can_download": user.can_download,
        "restore_targets": list(user.restore_targets or []),
        "created_at": iso(user.created_at),
        "single_sign_on": single_sign_on,
    }


def _get(user_id: int) -> User:
    user = get_db().get(User, user_id)
    if user is None:
        fail("No such user.", 404)
    return user


def _other_administrators(user: User) -> int:
    count = get_db().scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMINISTRATOR, User.disabled.is_(False), User.id != user.id)
    )
    return int(count or 0)


@blueprint.get("/users")
@login_required
def page() -> str:
    return render_template("users.html", tab="users")


@blueprint.get("/api/users")
@login_required
@operation("List the users", responses={200: UsersAnswer})
def list_users() -> Response:
    users = get_db().scalars(select(User).order_by(User.username)).all()
    linked = set(get_db().scalars(select(SsoIdentity.user_id)))
    return jsonify(users=[user_json(user, user.id in linked) for user in users])


@blueprint.post("/api/users")
@login_required
@operation("Create a user with a first password", body=NewUserBody, responses={201: UserAnswer})
def create_user(body: NewUserBody) -> tuple[Response, int]:
    if problem := password_problem(body.password):
        field_errors({"password": problem})
    session = get_db()
    if session.scalar(select(User).where(User.username == body.username)) is not None:
        field_errors({"username": "A user with this name exists already."}, 409)
    user = User(
        username=body.username,
        password_hash=hash_password(body.password),
        role=Role(body.role),
        can_download=body.can_download,
        restore_targets=list(body.restore_targets),
    )
    session.add(user)
    session.commit()
    logger.info("user %s (%s) created by %s", user.username, user.role, current_user.user.username)
    return jsonify(user=user_json(user)), 201


@blueprint.put("/api/users/<int:user_id>")
@login_required
@operation(
    "Change a user's role, downloads, restore folders, or disable them",
    body=UserChangeBody,
    responses={200: UserAnswer},
)
def update_user(user_id: int, body: UserChangeBody) -> Response:
    user = _get(user_id)
    session = get_db()
    stays_administrator = (body.role in (None, Role.ADMINISTRATOR.value)) and not body.disabled
    is_administrator = user.role is Role.ADMINISTRATOR and not user.disabled
    if is_administrator and not stays_administrator and _other_administrators(user) == 0:
        fail(LAST_ADMINISTRATOR, 409)
    if body.role is not None:
        user.role = Role(body.role)
    if body.disabled is not None:
        user.disabled = body.disabled
    if body.can_download is not None:
        user.can_download = body.can_download
    if body.restore_targets is not None:
        user.restore_targets = list(body.restore_targets)
    session.commit()
    if user.disabled:
        end_other_sessions(session, user.id, keep=None)
    logger.info("user %s changed by %s", user.username, current_user.user.username)
    return jsonify(user=user_json(user))


@blueprint.post("/api/users/<int:user_id>/password")
@login_required
@operation(
    "Reset a user's password (ends their sessions)",
    body=ResetPasswordBody,
    responses={200: OkAnswer},
)
def reset_password(user_id: int, body: ResetPasswordBody) -> Response:
    user = _get(user_id)
    if problem := password_problem(body.password):
        field_errors({"password": problem})
    session = get_db()
    user.password_hash = hash_password(body.password)
    session.commit()
    keep = current_user.session_id if user.id == current_user.user.id else None
    end_other_sessions(session, user.id, keep=keep)
    logger.info("password of %s reset by %s", user.username, current_user.user.username)
    return jsonify(ok=True)


@blueprint.delete("/api/users/<int:user_id>")
@login_required
@operation("Delete a user, their sessions and their API tokens", responses={200: OkAnswer})
def delete_user(user_id: int) -> Response:
    user = _get(user_id)
    if user.role is Role.ADMINISTRATOR and not user.disabled and _other_administrators(user) == 0:
        fail(LAST_ADMINISTRATOR, 409)
    session = get_db()
    # Sessions and tokens go with the row (ON DELETE CASCADE; SQLite has foreign keys on).
    session.delete(user)
    session.commit()
    logger.info("user %s deleted by %s", user.username, current_user.user.username)
    return jsonify(ok=True)
