"""Single sign-on with OpenID Connect: the login redirect, the callback, the settings.

The protocol is Authlib's (`FlaskOAuth2App`): issuer discovery, the authorization code
flow with PKCE (S256), `state` and `nonce` kept in the signed session cookie and
checked on return, and the ID token's signature checked against the provider's JWKS
and its issuer, audience and expiry checked. We add what Authlib leaves to the
application: the discovery document must name the issuer we were configured with,
the audience must be our client ID, and the groups come from the ID token or, when it
does not carry them, from the userinfo endpoint (whose subject must match).

A provider account is linked to a user by issuer and subject, never by e-mail; the
first login creates the user, and each login sets the role from the group mapping
(core/sso.py). Single sign-on users get a password nobody knows. Their provider does the
second factor, so they skip ours; password logins (the break-glass administrator
included) keep it.

"SSO only" refuses password logins except the break-glass account's: the oldest
enabled local administrator (`password_login_refusal`, called by auth.login).
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any, NoReturn

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from flask import Blueprint, Flask, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_user
from joserfc.errors import JoseError
from pydantic import ValidationError
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from mackuper import installation
from mackuper.core.sso import claim_values, role_for_groups, username_for
from mackuper.models import Role, SsoIdentity, User, utcnow
from mackuper.passwords import hash_password
from mackuper.schemas.base import secret_status
from mackuper.schemas.sso import SsoSettings, SsoSettingsAnswer
from mackuper.web import audit
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import field_errors
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.sessions import end_session, start_session
from mackuper.web.setup_state import setup_complete

logger = logging.getLogger(__name__)
blueprint = Blueprint("sso", __name__)

SETTINGS_KEY = "sso_settings"
SECRETS_KEY = "sso_secrets"  # noqa: S105 - the name of a settings row
TIMEOUT_SECONDS = 10
LEEWAY_SECONDS = 60
SSO_ONLY = "This installation signs in with single sign-on only: use “Sign in with SSO”."


class SsoError(Exception):
    """Single sign-on did not succeed; the message is what the person is shown."""

    def __init__(
        self, message: str, reason: str, status: int = 400, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.details = details or {}


# Settings ---------------------------------------------------------------------------


def stored_settings(session: Session, with_secret: bool = False) -> SsoSettings:
    """The saved settings (defaults when none); the client secret only if asked."""
    text = installation.read(session, SETTINGS_KEY)
    try:
        settings = SsoSettings.model_validate_json(text) if text else SsoSettings()
    except ValidationError:
        logger.exception("the stored single sign-on settings are unreadable; SSO is off")
        return SsoSettings()
    if with_secret:
        stored = runtime().secrets.decrypt(installation.read(session, SECRETS_KEY))
        settings = settings.model_copy(update=stored)
    return settings


def _settings_json(settings: SsoSettings) -> dict[str, Any]:
    return {**settings.public(), "secrets": secret_status(SsoSettings, settings.secrets())}


def exported_settings(session: Session) -> dict[str, Any]:
    """The settings for the configuration export: the client secret as "set"/"not set"."""
    return _settings_json(stored_settings(session, with_secret=True))


def _redirect_uri() -> str:
    return url_for("sso.callback", _external=True)


@blueprint.get("/api/sso/settings")
@login_required
@operation(
    "The single sign-on settings (never the client secret)", responses={200: SsoSettingsAnswer}
)
def get_settings() -> Response:
    settings = stored_settings(get_db(), with_secret=True)
    return jsonify(settings=_settings_json(settings), redirect_uri=_redirect_uri())


@blueprint.put("/api/sso/settings")
@login_required
@operation(
    "Change the single sign-on settings (a blank client secret keeps the stored one)",
    body=SsoSettings,
    responses={200: SsoSettingsAnswer},
)
def update_settings(body: SsoSettings) -> Response:
    """Enabled settings are tried first: the provider's discovery document must answer
    and name the same issuer, or nothing is saved."""
    session = get_db()
    settings = body.keep_stored(stored_settings(session, with_secret=True).secrets())
    if settings.enabled:
        try:
            _discover(_client(settings), settings)
        except SsoError as error:
            field_errors({"issuer": str(error)})
    installation.write(session, SETTINGS_KEY, json.dumps(settings.public()))
    secret_values = settings.secrets()
    encrypted = runtime().secrets.encrypt(secret_values) if secret_values else None
    installation.write(session, SECRETS_KEY, encrypted)
    session.commit()
    logger.info("single sign-on settings changed by %s", current_user.user.username)
    return jsonify(settings=_settings_json(settings), redirect_uri=_redirect_uri())


def offered() -> dict[str, bool]:
    """For the login page: whether to show "Sign in with SSO", and whether it is the only way."""
    settings = stored_settings(get_db())
    return {"offered": settings.enabled, "only": settings.enabled and settings.sso_only}


def break_glass_user_id(session: Session) -> int | None:
    """The oldest enabled administrator who is not a single sign-on user."""
    linked = exists().where(SsoIdentity.user_id == User.id)
    found = session.scalar(
        select(func.min(User.id)).where(
            User.role == Role.ADMINISTRATOR, User.disabled.is_(False), ~linked
        )
    )
    return int(found) if found is not None else None


def sso_only(session: Session) -> bool:
    """Whether password logins are refused (except the break-glass account's)."""
    settings = stored_settings(session)
    return settings.enabled and settings.sso_only


def password_login_refusal(session: Session, user: User) -> str | None:
    """Why `user` may not log in with a password (SSO only, not the break-glass
    account), or None when they may."""
    if not sso_only(session) or user.id == break_glass_user_id(session):
        return None
    return SSO_ONLY


# The provider -----------------------------------------------------------------------


def _client(settings: SsoSettings) -> FlaskOAuth2App:
    return FlaskOAuth2App(
        FlaskIntegration("sso"),
        name="sso",
        client_id=settings.client_id,
        client_secret=settings.client_secret or None,
        server_metadata_url=settings.issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": settings.scopes,
            "code_challenge_method": "S256",
            "default_timeout": TIMEOUT_SECONDS,
        },
    )


def _unreachable(error: Exception) -> NoReturn:
    raise SsoError(
        f"Mackuper could not talk to the identity provider ({type(error).__name__}); "
        "try again later or ask an administrator.",
        "provider unreachable",
        502,
        {"error": str(error)[:200]},
    ) from error


def _discover(client: FlaskOAuth2App, settings: SsoSettings) -> dict[str, Any]:
    """The provider's discovery document; SsoError when it cannot be read or names
    another issuer (OpenID Connect Discovery 1.0, section 4.3)."""
    try:
        metadata: dict[str, Any] = client.load_server_metadata()
    except (requests.RequestException, ValueError) as error:
        raise SsoError(
            f"The provider's discovery document at {settings.issuer.rstrip('/')}"
            f"/.well-known/openid-configuration could not be read ({type(error).__name__}).",
            "discovery failed",
            502,
            {"error": str(error)[:200]},
        ) from error
    issuer = metadata.get("issuer")
    if not isinstance(issuer, str) or issuer.rstrip("/") != settings.issuer.rstrip("/"):
        raise SsoError(
            f"The provider's discovery document names the issuer {issuer!r}, "
            f"not {settings.issuer!r}; check the issuer URL.",
            "issuer mismatch",
            502,
        )
    missing = [
        key
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri")
        if key not in metadata
    ]
    if missing:
        raise SsoError(
            f"The provider's discovery document lacks {', '.join(missing)}.",
            "discovery incomplete",
            502,
        )
    return metadata


def _authenticate(settings: SsoSettings) -> dict[str, Any]:
    """The checked claims of the person the provider sent back (ID token, and userinfo
    when the ID token does not carry the groups claim)."""
    client = _client(settings)
    metadata = _discover(client, settings)
    if request.args.get("iss") not in (None, metadata["issuer"]):
        # RFC 9207: a response from another issuer is a mix-up attack.
        raise SsoError("The sign-in answer came from another provider.", "issuer mismatch")
    options = {
        "iss": {"essential": True, "value": metadata["issuer"]},
        "aud": {"essential": True, "value": settings.client_id},
        "exp": {"essential": True},
        "sub": {"essential": True},
    }
    try:
        token = client.authorize_access_token(claims_options=options, leeway=LEEWAY_SECONDS)
    except MismatchingStateError as error:
        raise SsoError(
            "The sign-in expired or was started in another browser; start it again.",
            "state mismatch",
        ) from error
    except OAuthError as error:
        description = f": {error.description}" if error.description else ""
        raise SsoError(
            f"The identity provider refused the sign-in ({error.error}{description}).",
            f"provider error {error.error}"[:60],
            403 if error.error == "access_denied" else 400,
        ) from error
    except JoseError as error:
        raise SsoError(
            f"The identity provider's ID token did not check out ({error.error}).",
            f"bad ID token: {error.error}"[:60],
            400,
        ) from error
    except (requests.RequestException, AuthlibBaseError, ValueError) as error:
        _unreachable(error)
    if not isinstance(token.get("userinfo"), dict):
        raise SsoError("The identity provider sent no ID token.", "no ID token", 502)
    claims = dict(token["userinfo"])
    if claim_values(claims, settings.groups_claim) is None and metadata.get("userinfo_endpoint"):
        try:
            extra = dict(client.userinfo(token=token))
        except (requests.RequestException, AuthlibBaseError, ValueError) as error:
            _unreachable(error)
        if extra.get("sub") != claims["sub"]:
            raise SsoError(
                "The provider's userinfo answer is about someone else.", "userinfo mismatch"
            )
        claims = {**extra, **claims}
    return claims


# Users ------------------------------------------------------------------------------


def _would_leave_no_administrator(session: Session, user: User) -> bool:
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMINISTRATOR, User.disabled.is_(False), User.id != user.id)
    )
    return user.role is Role.ADMINISTRATOR and not others


def _sign_in(session: Session, settings: SsoSettings, claims: dict[str, Any]) -> User:
    """The user linked to the provider account in `claims` (created on first login),
    with the role the groups give; SsoError when refused."""
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    groups = claim_values(claims, settings.groups_claim) or []
    seen = {
        "issuer": issuer,
        "subject": subject[:100],
        "provider_username": str(claims.get("preferred_username", ""))[:64],
        "groups": [group[:100] for group in groups[:50]],
    }
    mapping = [(item.group, item.role) for item in settings.role_mapping]
    role_name = role_for_groups(groups, mapping, settings.refuse_unmapped, settings.default_role)
    if role_name is None:
        raise SsoError(
            "Your account at the identity provider is in no group that has a role in "
            "Mackuper, so it may not sign in here; ask an administrator to map one of "
            "your groups to a role.",
            "no mapped group",
            403,
            seen,
        )
    role = Role(role_name)
    identity = session.scalar(
        select(SsoIdentity).where(SsoIdentity.issuer == issuer, SsoIdentity.subject == subject)
    )
    if identity is None:

        def taken(name: str) -> bool:
            return session.scalar(select(User.id).where(User.username == name)) is not None

        # A password nobody knows: a password login takes as long as anyone's, and fails.
        unknown = hash_password(secrets.token_urlsafe(32))
        user = User(username=username_for(claims, taken), password_hash=unknown, role=role)
        session.add(user)
        session.flush()
        identity = SsoIdentity(user_id=user.id, issuer=issuer, subject=subject)
        session.add(identity)
        logger.info("user %s (%s) created by single sign-on", user.username, role)
    else:
        user = session.get_one(User, identity.user_id)
        if user.disabled:
            raise SsoError(
                "Your Mackuper account is disabled; ask an administrator.",
                "disabled",
                403,
                {**seen, "user": user.username},
            )
        demoted = user.role is not role and role is not Role.ADMINISTRATOR
        if demoted and _would_leave_no_administrator(session, user):
            logger.warning("%s keeps the administrator role: no other one", user.username)
            role = Role.ADMINISTRATOR
        user.role = role
    email = claims.get("email")
    identity.email = email[:255] if isinstance(email, str) else None
    identity.last_login_at = utcnow()
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise SsoError(
            "Another sign-in of this account happened at the same moment; try again.",
            "concurrent first login",
            409,
        ) from error
    return user


def _refused(message: str, status: int) -> tuple[str, int]:
    return render_template("login.html", sso_error=message), status


@blueprint.get("/sso/login")
def login() -> Response | tuple[str, int]:
    """Send the browser to the identity provider."""
    settings = stored_settings(get_db(), with_secret=True)
    if not settings.enabled:
        return _refused("Single sign-on is not set up here; log in with your password.", 404)
    try:
        client = _client(settings)
        _discover(client, settings)
        response: Response = client.authorize_redirect(_redirect_uri())
    except SsoError as error:
        logger.warning("single sign-on could not start: %s %s", error, error.details)
        return _refused(str(error), error.status)
    except (requests.RequestException, AuthlibBaseError, ValueError, RuntimeError) as error:
        logger.warning("single sign-on could not start: %s", error)
        return _refused("Mackuper could not start the sign-in with the identity provider.", 502)
    return response


@blueprint.get("/sso/callback")
def callback() -> Response | tuple[str, int]:
    """Where the provider sends the browser back: check everything, then log in."""
    session = get_db()
    settings = stored_settings(session, with_secret=True)
    if not settings.enabled:
        return _refused("Single sign-on is not set up here; log in with your password.", 404)
    try:
        claims = _authenticate(settings)
        user = _sign_in(session, settings, claims)
    except SsoError as error:
        logger.warning(
            "failed single sign-on from %s: %s (%s)", request.remote_addr, error.reason, error
        )
        audit.record(
            "SSO login failed",
            f"provider account {error.details.get('subject', '')}".strip(),
            {"reason": error.reason, **error.details},
            actor=error.details.get("user"),
        )
        return _refused(str(error), error.status)
    if current_user.is_authenticated:
        end_session(session, current_user.session_id)
    login_user(start_session(session, user, remember=False))
    logger.info("user %s logged in by single sign-on from %s", user.username, request.remote_addr)
    audit.record(
        "SSO login",
        f"user {user.username}",
        {"role": user.role.value, "issuer": str(claims["iss"])},
        actor=user.username,
    )
    return redirect("/" if setup_complete() else "/setup")


def install(app: Flask) -> None:
    """The login page's "Sign in with SSO" reads `single_sign_on()`."""
    app.jinja_env.globals["single_sign_on"] = offered
