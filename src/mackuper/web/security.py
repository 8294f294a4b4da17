"""Login, CSRF, login rate limiting and security headers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any, TypeVar, cast

import flask_login
from flask import Flask, Response, abort, jsonify, request, session
from flask_login import LoginManager, UserMixin

from mackuper.models import User
from mackuper.web.database import get_db

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


class LoginUser(UserMixin):  # type: ignore[misc]
    """The Flask-Login view of a user; its id changes when the password does."""

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        return f"{self.user.id}.{session_version(self.user.password_hash)}"


def session_version(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def load_user(identifier: str) -> LoginUser | None:
    user_id, _, version = identifier.partition(".")
    if not user_id.isdigit():
        return None
    user = get_db().get(User, int(user_id))
    if user is None or not hmac.compare_digest(version, session_version(user.password_hash)):
        return None
    return LoginUser(user)


def session_user_id() -> str | None:
    """The user id a session cookie logged in, if any (Flask-Login's key)."""
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


class LoginLimiter:
    """At most `limit` failed logins per client address and per user name in `window`."""

    def __init__(self, limit: int = 5, window: float = 900.0) -> None:
        self.limit = limit
        self.window = window
        self.failures: dict[str, deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self.failures[key]
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def retry_after(self, keys: list[str]) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = time.monotonic()
        with self.lock:
            waits = [
                int(times[0] + self.window - now) + 1
                for key in keys
                if len(times := self._recent(key, now)) >= self.limit
            ]
        return max(waits, default=0)

    def failed(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self.lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, keys: list[str]) -> None:
        with self.lock:
            for key in keys:
                self.failures.pop(key, None)


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
    app.extensions["login_limiter"] = LoginLimiter()
    app.before_request(check_csrf)
    app.after_request(set_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    return manager
