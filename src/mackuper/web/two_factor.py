"""Two-factor login on the account page: authenticator app, recovery codes, passkeys,
and the administrator's "require two-factor login for everyone".

A user has a second factor when their authenticator app is confirmed or they have a
passkey; the login then asks for it after the password (web.auth). With the
requirement on, a user without one who logs in with a password may reach only this
page (and log out) until they set one up: `install` adds that gate after the login
check. Users who log in through single sign-on are exempt (their provider asks for
its own second factor), and so are API tokens, which scripts use.

Removing the last second factor while it is required is refused; removing the app
needs the password and a current code (or a recovery code), removing a passkey the
password.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, jsonify, redirect, render_template, request
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from mackuper import installation
from mackuper.models import Passkey, SsoIdentity, User, utcnow
from mackuper.passwords import verify_password
from mackuper.schemas.answers import OkAnswer
from mackuper.schemas.two_factor import (
    CodeBody,
    NewPasskeyBody,
    PasswordAndCodeBody,
    PasswordOnlyBody,
    PolicyAnswer,
    PolicyBody,
    RecoveryCodesAnswer,
    TotpEnrolment,
    TwoFactorStatus,
)
from mackuper.web import passkeys, totp
from mackuper.web.access import is_public
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import iso

logger = logging.getLogger(__name__)
blueprint = Blueprint("two_factor", __name__)

REQUIRED_SETTING = "two_factor_required"
PAGE = "/account/two-factor"
ENROL_FIRST = "Set up two-factor login first: an administrator requires it for every account."
LAST_FACTOR = (
    "Two-factor login is required for every account: add another second factor before"
    " removing this one."
)
OPEN_WHILE_ENROLLING = {
    "static",
    "auth.logout",
    "two_factor.page",
    "two_factor.status",
    "two_factor.start_totp",
    "two_factor.confirm_totp",
    "two_factor.passkey_options",
    "two_factor.add_passkey",
}
"""What a user who must enrol first may reach (public endpoints pass anyway)."""


def required(session: Session) -> bool:
    return installation.read(session, REQUIRED_SETTING) == "1"


def passkeys_of(session: Session, user_id: int) -> list[Passkey]:
    return list(
        session.scalars(select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id))
    )


def has_passkey(session: Session, user_id: int) -> bool:
    count = session.scalar(
        select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)
    )
    return bool(count)


def any_passkey(session: Session) -> bool:
    """Whether anyone has a passkey (the login page offers a passwordless login then)."""
    return session.scalar(select(Passkey.id).limit(1)) is not None


def has_second_factor(session: Session, user_id: int) -> bool:
    return totp.confirmed(session, user_id) is not None or has_passkey(session, user_id)


def check_code(session: Session, user_id: int, code: str) -> str | None:
    """How `code` proved the user ("authenticator app", "recovery code"), or None.

    A code that works is used up: the app's code for its time step, a recovery code
    for good."""
    if totp.check_code(session, runtime().secrets, user_id, code):
        return "authenticator app"
    if totp.use_recovery_code(session, user_id, code):
        return "recovery code"
    return None


def _signs_in_with_sso(session: Session, user_id: int) -> bool:
    found = session.scalar(select(SsoIdentity.id).where(SsoIdentity.user_id == user_id).limit(1))
    return found is not None


def must_enrol(session: Session, user: User) -> bool:
    """Whether `user` must set up a second factor before doing anything else."""
    return (
        required(session)
        and not has_second_factor(session, user.id)
        and not _signs_in_with_sso(session, user.id)
    )


def _enforce() -> Response | None:
    endpoint = request.endpoint or ""
    if (
        endpoint in OPEN_WHILE_ENROLLING
        or request.endpoint is None
        or not current_user.is_authenticated
        or current_user.session_id is None
    ):
        return None
    if is_public(endpoint):
        return None
    session = get_db()
    if not must_enrol(session, current_user.user):
        return None
    if request.path.startswith("/api/"):
        response = jsonify(error=ENROL_FIRST)
        response.status_code = 403
        return response
    return redirect(PAGE)


def install(app: Flask) -> None:
    """The enrolment gate; call after the login check is installed."""
    app.before_request(_enforce)


def _user() -> User:
    user: User = current_user.user
    return user


def _status(session: Session, user: User) -> dict[str, object]:
    return {
        "totp": totp.confirmed(session, user.id) is not None,
        "recovery_codes_left": totp.recovery_codes_left(session, user.id),
        "passkeys": [
            {
                "id": passkey.id,
                "name": passkey.name,
                "created_at": iso(passkey.created_at),
                "last_used_at": iso(passkey.last_used_at),
            }
            for passkey in passkeys_of(session, user.id)
        ],
        "required": required(session),
    }


def _check_password(password: str) -> None:
    if not verify_password(_user().password_hash, password):
        field_errors({"password": "The password is wrong."}, 403)


def _refuse_if_last(session: Session, user: User) -> None:
    """Refuse removing a second factor when it is the user's last and one is required."""
    factors = len(passkeys_of(session, user.id)) + int(totp.confirmed(session, user.id) is not None)
    if required(session) and factors <= 1:
        fail(LAST_FACTOR, 409)


@blueprint.get(PAGE)
@login_required
def page() -> str:
    return render_template(
        "two_factor.html", tab="settings", must_enrol=must_enrol(get_db(), _user())
    )


@blueprint.get("/api/account/two-factor")
@login_required
@operation(
    "Your second factors: app, recovery codes left, passkeys", responses={200: TwoFactorStatus}
)
def status() -> Response:
    return jsonify(_status(get_db(), _user()))


@blueprint.post("/api/account/totp")
@login_required
@operation(
    "Start setting up an authenticator app: a new secret, active once a code confirms it",
    responses={200: TotpEnrolment},
)
def start_totp() -> Response:
    user = _user()
    session = get_db()
    try:
        secret = totp.start_enrolment(session, runtime().secrets, user)
    except ValueError as error:
        fail(str(error), 409)
    return jsonify(secret=secret, uri=totp.provisioning_uri(secret, user.username))


@blueprint.post("/api/account/totp/confirm")
@login_required
@operation(
    "Confirm the authenticator app with a code from it; answers the recovery codes, once",
    body=CodeBody,
    responses={200: RecoveryCodesAnswer},
)
def confirm_totp(body: CodeBody) -> Response:
    codes = totp.confirm(get_db(), runtime().secrets, _user().id, body.code)
    if codes is None:
        field_errors({"code": "That code is not the app's current one; try the next code."})
    logger.info("user %s set up an authenticator app", _user().username)
    return jsonify(recovery_codes=codes)


@blueprint.post("/api/account/totp/disable")
@login_required
@operation(
    "Remove the authenticator app and its recovery codes (password and a code)",
    body=PasswordAndCodeBody,
    responses={200: OkAnswer},
)
def disable_totp(body: PasswordAndCodeBody) -> Response:
    user = _user()
    session = get_db()
    _check_password(body.password)
    if totp.confirmed(session, user.id) is None:
        fail("No authenticator app is set up.", 409)
    _refuse_if_last(session, user)
    if check_code(session, user.id, body.code) is None:
        field_errors({"code": "That code is wrong or used already."}, 403)
    totp.remove(session, user.id)
    logger.info("user %s removed their authenticator app", user.username)
    return jsonify(ok=True)


@blueprint.post("/api/account/recovery-codes")
@login_required
@operation(
    "New recovery codes (the old ones stop working); password and a code",
    body=PasswordAndCodeBody,
    responses={200: RecoveryCodesAnswer},
)
def renew_recovery_codes(body: PasswordAndCodeBody) -> Response:
    user = _user()
    session = get_db()
    _check_password(body.password)
    if totp.confirmed(session, user.id) is None:
        fail("Recovery codes come with an authenticator app; set one up first.", 409)
    if check_code(session, user.id, body.code) is None:
        field_errors({"code": "That code is wrong or used already."}, 403)
    return jsonify(recovery_codes=totp.new_recovery_codes(session, user.id))


@blueprint.post("/api/account/passkeys/options")
@login_required
@operation("Options for the browser to create a passkey (navigator.credentials.create)")
def passkey_options() -> Response:
    user = _user()
    try:
        options = passkeys.registration_options(user, passkeys_of(get_db(), user.id))
    except passkeys.PasskeyError as error:
        fail(str(error), 409)
    return Response(options, mimetype="application/json")


@blueprint.post("/api/account/passkeys")
@login_required
@operation("Add the passkey the browser created", body=NewPasskeyBody, responses={201: None})
def add_passkey(body: NewPasskeyBody) -> tuple[Response, int]:
    user = _user()
    session = get_db()
    try:
        created = passkeys.verify_registration(body.credential)
    except passkeys.PasskeyError as error:
        fail(str(error), 400)
    if session.scalar(select(Passkey.id).where(Passkey.credential_id == created.credential_id)):
        fail("This passkey is added already.", 409)
    passkey = Passkey(
        user_id=user.id,
        name=body.name,
        credential_id=created.credential_id,
        public_key=created.public_key,
        sign_count=created.sign_count,
        transports=created.transports,
        created_at=utcnow(),
    )
    session.add(passkey)
    session.commit()
    logger.info("user %s added passkey %s", user.username, passkey.id)
    return jsonify(passkey={"id": passkey.id, "name": passkey.name}), 201


@blueprint.delete("/api/account/passkeys/<int:passkey_id>")
@login_required
@operation(
    "Remove one of your passkeys (password)", body=PasswordOnlyBody, responses={200: OkAnswer}
)
def remove_passkey(passkey_id: int, body: PasswordOnlyBody) -> Response:
    user = _user()
    session = get_db()
    passkey = session.get(Passkey, passkey_id)
    if passkey is None or passkey.user_id != user.id:
        fail("No such passkey.", 404)
    _check_password(body.password)
    _refuse_if_last(session, user)
    session.delete(passkey)
    session.commit()
    logger.info("user %s removed passkey %s", user.username, passkey_id)
    return jsonify(ok=True)


@blueprint.get("/api/two-factor/policy")
@login_required
@operation("Whether every account must use two-factor login", responses={200: PolicyAnswer})
def get_policy() -> Response:
    return jsonify(required=required(get_db()))


@blueprint.put("/api/two-factor/policy")
@login_required
@operation(
    "Require two-factor login for everyone (users without it set it up at their next login)",
    body=PolicyBody,
    responses={200: PolicyAnswer},
)
def set_policy(body: PolicyBody) -> Response:
    session = get_db()
    if body.required and not has_second_factor(session, _user().id):
        fail("Set up your own second factor first: the requirement applies to you too.", 409)
    installation.write(session, REQUIRED_SETTING, "1" if body.required else None)
    session.commit()
    return jsonify(required=body.required)
