"""Setup wizard, login, logout and password change."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any, NoReturn

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request
from flask import session as cookie_session
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from mackuper.models import Passkey, Setting, User, utcnow
from mackuper.passwords import dummy_hash, hash_password, password_problem, verify_password
from mackuper.schemas.answers import LoggedIn, OkAnswer, SetupStatus
from mackuper.schemas.api import LoginBody, PasswordBody, SetupAdminBody
from mackuper.schemas.two_factor import CodeBody, PasskeyLoginBody
from mackuper.web import audit, oidc, passkeys, totp, two_factor
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors
from mackuper.web.login_limit import Admission, LoginLimiter
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.sessions import end_other_sessions, end_session, start_session
from mackuper.web.setup_state import admin_exists, mark_setup_complete, setup_complete

logger = logging.getLogger(__name__)
blueprint = Blueprint("auth", __name__)

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
SETUP_LOCK = "setup_admin_created"
PENDING_LOGIN = "login_pending"
SECOND_STEP_TIME = 300
LOGIN_EXPIRED = "The login expired; enter your user name and password again."
"""Seconds between a right password and its second step."""


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
    # The passwordless button only once someone has a passkey to use with it.
    return render_template("login.html", passkeys_offered=two_factor.any_passkey(get_db()))


def second_step_methods(session: Session, user: User) -> list[str]:
    """How `user` may finish logging in after the password: "code", "passkey"; [] when
    the password is enough."""
    methods = []
    if totp.confirmed(session, user.id) is not None:
        methods.append("code")
    if two_factor.has_passkey(session, user.id):
        methods.append("passkey")
    return methods


def _password_mark(user: User) -> str:
    """Changes when the password does, so a password change ends a half-done login."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def start_second_step(user: User, remember: bool) -> None:
    """Remember, in the signed session cookie, whose password was right (for a while)."""
    cookie_session[PENDING_LOGIN] = {
        "user_id": user.id,
        "remember": remember,
        "at": int(time.time()),
        "mark": _password_mark(user),
    }


def end_second_step() -> None:
    cookie_session.pop(PENDING_LOGIN, None)


def pending_user(session: Session) -> tuple[User, bool] | None:
    """The user (and "remember me") whose password this browser gave, while it is fresh."""
    pending = cookie_session.get(PENDING_LOGIN)
    if not isinstance(pending, dict) or not isinstance(pending.get("at"), int):
        return None
    if time.time() - pending["at"] > SECOND_STEP_TIME:
        return None
    user_id = pending.get("user_id")
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or user.disabled or pending.get("mark") != _password_mark(user):
        return None
    return user, bool(pending.get("remember"))


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
    if refusal := oidc.password_login_refusal(session, user):
        logger.warning("password login of %s refused: single sign-on only", username)
        audit.record(
            "login failed",
            f"user {user.username}",
            {"reason": "single sign-on only"},
            actor=user.username,
        )
        return jsonify(error=refusal), 403
    if second_step := second_step_methods(session, user):
        # The name's failed attempts are not forgiven yet: the second step counts on.
        start_second_step(user, body.remember)
        return jsonify(ok=True, setup_complete=setup_complete(), second_step=second_step)
    _limiter().succeeded(session, admission)
    _finish_login(session, user, body.remember, {"remember": body.remember})
    return jsonify(ok=True, setup_complete=setup_complete())


def _finish_login(session: Session, user: User, remember: bool, details: dict[str, Any]) -> None:
    if current_user.is_authenticated:
        end_session(session, current_user.session_id)
    login_user(start_session(session, user, remember=remember), remember=remember)
    logger.info("user %s logged in from %s", user.username, request.remote_addr)
    audit.record("login", f"user {user.username}", details, actor=user.username)


@blueprint.get("/login/second-step")
def second_step_page() -> str | Response:
    if current_user.is_authenticated:
        return redirect("/")
    session = get_db()
    pending = pending_user(session)
    methods = [] if pending is None else second_step_methods(session, pending[0])
    return render_template("login_second_step.html", methods=methods, expired=LOGIN_EXPIRED)


def _second_step_user() -> tuple[User, bool]:
    """The user whose password was right and their "remember me"; 401 when none."""
    pending = pending_user(get_db())
    if pending is None:
        fail(LOGIN_EXPIRED, 409)
    return pending


def _admit_second_step(user: User | None) -> Admission:
    """Count this attempt like a password's (429 when over the limits); None: no user
    is known yet (a passwordless login with a passkey nobody has)."""
    name = user.username if user is not None else "(passkey)"
    admission = _limiter().admit(get_db(), request.remote_addr, name)
    if not admission.allowed:
        minutes = max(1, round(admission.retry_after / 60))
        response = jsonify(error=f"Too many failed logins; try again in {minutes} minute(s).")
        response.headers["Retry-After"] = str(admission.retry_after)
        response.status_code = 429
        abort(response)
    return admission


def _second_step_failed(user: User, method: str, message: str) -> NoReturn:
    logger.warning("failed second step for %r from %s", user.username, request.remote_addr)
    audit.record(
        "second step failed", f"user {user.username}", {"method": method}, actor=user.username
    )
    fail(message, 401)


def _second_step_passed(user: User, remember: bool, admission: Admission, method: str) -> None:
    session = get_db()
    # Both attempts back to the address: the password's and this one.
    _limiter().succeeded(session, admission, attempts=2)
    end_second_step()
    _finish_login(session, user, remember, {"remember": remember, "second_factor": method})


@blueprint.post("/api/login/code")
@operation(
    "Log in, second step: a code from the authenticator app, or a recovery code",
    body=CodeBody,
    responses={200: LoggedIn},
    public=True,
)
def second_step_code(body: CodeBody) -> Response:
    """Counted against the login limits like the password (README, Security)."""
    user, remember = _second_step_user()
    admission = _admit_second_step(user)
    session = get_db()
    method = two_factor.check_code(session, user.id, body.code)
    if method is None:
        _second_step_failed(user, "code", "That code is wrong or was used already.")
    if method == "recovery code":
        left = totp.recovery_codes_left(session, user.id)
        audit.record(
            "recovery code used", f"user {user.username}", {"left": left}, actor=user.username
        )
    _second_step_passed(user, remember, admission, method)
    return jsonify(ok=True, setup_complete=setup_complete())


@blueprint.post("/api/login/passkey/options")
@operation(
    "Log in with a passkey: options for navigator.credentials.get (after the password,"
    " or alone for a passwordless login)",
    public=True,
)
def passkey_login_options() -> Response:
    session = get_db()
    pending = pending_user(session)
    try:
        options = passkeys.authentication_options(
            None if pending is None else two_factor.passkeys_of(session, pending[0].id)
        )
    except passkeys.PasskeyError as error:
        fail(str(error), 409)
    return Response(options, mimetype="application/json")


@blueprint.post("/api/login/passkey")
@operation(
    "Log in with the passkey the browser signed with (second step, or passwordless)",
    body=PasskeyLoginBody,
    responses={200: LoggedIn},
    public=True,
)
def passkey_login(body: PasskeyLoginBody) -> Response:
    """After a password the passkey must be that user's; without one it names the user
    and must have verified them (PIN, fingerprint). Counted against the login limits."""
    session = get_db()
    pending = pending_user(session)
    try:
        credential_id = passkeys.credential_id_of(body.credential)
    except passkeys.PasskeyError as error:
        fail(str(error), 400)
    passkey = session.scalar(select(Passkey).where(Passkey.credential_id == credential_id))
    owner = session.get(User, passkey.user_id) if passkey is not None else None
    if pending is not None:
        user, remember = pending
    elif owner is not None and not owner.disabled:
        user, remember = owner, False
    else:
        _admit_second_step(None)
        audit.record("login failed", "an unknown passkey", {"reason": "unknown passkey"})
        fail("This passkey is not known here.", 401)
    admission = _admit_second_step(user)
    if pending is None and (refusal := oidc.password_login_refusal(session, user)):
        audit.record(
            "login failed",
            f"user {user.username}",
            {"reason": "single sign-on only"},
            actor=user.username,
        )
        fail(refusal, 403)
    if passkey is None or owner is None or owner.id != user.id:
        _second_step_failed(user, "passkey", "This passkey is not one of this account's.")
    try:
        sign_count = passkeys.verify_authentication(
            body.credential, passkey, passwordless=pending is None
        )
    except passkeys.PasskeyError as error:
        _second_step_failed(user, "passkey", str(error))
    passkey.sign_count = sign_count
    passkey.last_used_at = utcnow()
    session.commit()
    _second_step_passed(
        user, remember, admission, "passkey" if pending is not None else "passkey, passwordless"
    )
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
