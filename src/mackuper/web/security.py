"""Login, CSRF and security headers; sessions and login limits have their own modules."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar, cast

import flask_login
from flask import Flask, Response, abort, jsonify, request, session
from flask_login import LoginManager

from mackuper.web.login_limit import LoginLimiter
from mackuper.web.sessions import LoginUser, load_user

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


View = TypeVar("View", bound=Callable[..., Any])


def login_required(view: View) -> View:
    """Flask-Login's decorator, typed (the app also guards every route before_request)."""
    return cast(View, flask_login.login_required(view))


def session_user_id() -> str | None:
    """The session id this request's cookie carries, if any (Flask-Login's `_user_id`)."""
    value = session.get("_user_id")
    return value if isinstance(value, str) else None


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return  # authenticated by the token alone; browsers cannot forge the header
    expected = session.get(CSRF_FIELD)
    given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not given or not hmac.compare_digest(expected, given):
        response = jsonify(
            error="The form expired or the request lacked its security token; reload the page."
        )
        response.status_code = 400
        abort(response)


def set_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_security(app: Flask, bearer_user: Callable[[], LoginUser | None]) -> LoginManager:
    """Sessions, CSRF and headers; `bearer_user` finds the user of an API token.

    The token module is passed in, not imported: it uses this module's decorators.
    """
    manager = LoginManager()
    manager.init_app(app)
    manager.user_loader(load_user)
    manager.request_loader(lambda _request: bearer_user())
    manager.session_protection = "basic"
    app.extensions["login_limiter"] = LoginLimiter(app.config["SECRET_KEY"])
    app.before_request(check_csrf)
    app.after_request(set_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    return manager
