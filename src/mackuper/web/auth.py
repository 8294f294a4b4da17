"""Setup wizard, login, logout and password change."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, current_app, jsonify, redirect, render_template, request
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from mackuper.models import Setting, User
from mackuper.passwords import dummy_hash, hash_password, password_problem, verify_password
from mackuper.schemas.answers import LoggedIn, OkAnswer, SetupStatus
from mackuper.schemas.api import LoginBody, PasswordBody, SetupAdminBody
from mackuper.web import audit, oidc
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors
from mackuper.web.login_limit import LoginLimiter
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.sessions import end_other_sessions, end_session, start_session
from mackuper.web.setup_state import admin_exists, mark_setup_complete, setup_complete

logger = logging.getLogger(__name__)
blueprint = Blueprint("auth", __name__)

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
SETUP_LOCK = "setup_admin_created"


def local_backup_dir() -> str:
    """Where `mackuper serve` suggests local destinations go (LOCAL_BACKUP_DIR), as an
    absolute path: the placeholder of the destination form's Directory field."""
    return str(runtime().settings.local_backup_dir.resolve())


@blueprint.get("/setup")
def setup_page() -> str | Response:
    if setup_complete():
        return redirect("/")
    if admin_exists() and not current_user.is_authenticated:
        return redirect("/login")
    return render_template("setup.html", local_backup_dir=local_backup_dir())


@blueprint.get("/api/setup/status")
@operation("Where the setup wizard stands", responses={200: SetupStatus}, public=True)
def setup_status() -> Response:
    return jsonify(
        admin_created=admin_exists(),
        complete=setup_complete(),
        logged_in=bool(current_user.is_authenticated),
    )


@blueprint.post("/api/setup/admin")
@operation(
    "Setup step 1: create the administrator (only while none exists)",
    body=SetupAdminBody,
    responses={201: None},
    public=True,
)
def setup_admin(body: SetupAdminBody) -> tuple[Response, int]:
    """Step 1: create the administrator, only while none exists."""
    if admin_exists():
        fail("The administrator already exists; log in instead.", 409)
    username = body.username
    password = body.password
    errors: dict[str, str] = {}
    if not USERNAME.match(username):
        errors["username"] = "Use 3 to 64 letters, digits, or . _ @ -"
    if problem := password_problem(password):
        errors["password"] = problem
    if body.password_confirm is not None and body.password_confirm != password:
        errors["password_confirm"] = "The two passwords differ."  # noqa: S105
    if errors:
        field_errors(errors)
    session = get_db()
    # The lock row's primary key makes two racing requests create one admin at most.
    session.add(Setting(key=SETUP_LOCK, value="1"))
    user = User(username=username, password_hash=hash_password(password))
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        fail("The administrator already exists; log in instead.", 409)
    login_user(start_session(session, user, remember=False))
    logger.info("administrator %s created by the setup wizard", username)
    audit.record("administrator created by setup", f"user {username}")
    return jsonify(ok=True, username=username), 201


@blueprint.post("/api/setup/finish")
@login_required
@operation("Setup: mark the wizard finished", responses={200: OkAnswer})
def setup_finish() -> Response:
    mark_setup_complete()
    return jsonify(ok=True)


@blueprint.get("/login")
def login_page() -> str | Response:
    if not admin_exists():
        return redirect("/setup")
    if current_user.is_authenticated:
        return redirect("/")
    return render_template("login.html")


def _limiter() -> LoginLimiter:
    limiter: LoginLimiter = current_app.extensions["login_limiter"]
    return limiter


@blueprint.post("/api/login")
@operation(
    "Log in (sets the session cookie)",
    body=LoginBody,
    responses={200: LoggedIn},
    public=True,
)
def login(body: LoginBody) -> Response | tuple[Response, int]:
    """Counted against the login limits before the password is checked (README, Security)."""
    username = body.username
    session = get_db()
    admission = _limiter().admit(session, request.remote_addr, username)
    if not admission.allowed:
        minutes = max(1, round(admission.retry_after / 60))
        response = jsonify(error=f"Too many failed logins; try again in {minutes} minute(s).")
        response.headers["Retry-After"] = str(admission.retry_after)
        return response, 429
    user = session.scalar(select(User).where(User.username == username))
    # An unknown name costs one argon2 verification too, so timing does not reveal it.
    password_hash = user.password_hash if user is not None else dummy_hash()
    if not verify_password(password_hash, body.password) or user is None or user.disabled:
        # An unknown name is not logged: it may be a password typed in the wrong field.
        who = repr(username) if user is not None else "an unknown user name"
        logger.warning("failed login for %s from %s", who, request.remote_addr)
        reason = "disabled" if user is not None and user.disabled else "wrong password"
        audit.record(
            "login failed",
            f"user {user.username}" if user is not None else "an unknown user name",
            {"reason": reason if user is not None else "unknown user name"},
            actor=user.username if user is not None else None,
        )
        return jsonify(error="Wrong user name or password."), 401
    _limiter().succeeded(session, admission)
    if refusal := oidc.password_login_refusal(session, user):
        logger.warning("password login of %s refused: single sign-on only", username)
        audit.record(
            "login failed",
            f"user {user.username}",
            {"reason": "single sign-on only"},
            actor=user.username,
        )
        return jsonify(error=refusal), 403
    if current_user.is_authenticated:
        end_session(session, current_user.session_id)
    login_user(start_session(session, user, remember=body.remember), remember=body.remember)
    logger.info("user %s logged in from %s", username, request.remote_addr)
    audit.record("login", f"user {user.username}", {"remember": body.remember})
    return jsonify(ok=True, setup_complete=setup_complete())


@blueprint.post("/api/logout")
@operation("Log out: ends the session on the server", responses={200: OkAnswer})
def logout() -> Response:
    if current_user.is_authenticated:
        audit.record("logout", f"user {current_user.user.username}")
        end_session(get_db(), current_user.session_id)
    logout_user()
    return jsonify(ok=True)


@blueprint.post("/api/account/password")
@login_required
@operation(
    "Change the password (ends the user's other sessions)",
    body=PasswordBody,
    responses={200: OkAnswer},
)
def change_password(body: PasswordBody) -> Response:
    user: User = current_user.user
    if not verify_password(user.password_hash, body.current_password):
        field_errors({"current_password": "The current password is wrong."}, 403)
    new = body.new_password
    if problem := password_problem(new):
        field_errors({"new_password": problem})
    session = get_db()
    stored = session.get_one(User, user.id)
    stored.password_hash = hash_password(new)
    session.commit()
    end_other_sessions(session, stored.id, keep=current_user.session_id)
    logger.info("user %s changed the password", stored.username)
    return jsonify(ok=True)
