"""create_app(): the Flask application with its blueprints and guards."""

from __future__ import annotations

import logging
from typing import Any, cast

from flask import Flask, jsonify, redirect, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as WerkzeugResponse

from mackuper import __version__
from mackuper.runtime import Runtime, open_runtime
from mackuper.web import (
    access,
    anomalies,
    audit,
    auth,
    containers,
    databases,
    destinations,
    encryption,
    invitations,
    jobs,
    json_input,
    oidc,
    openapi,
    pages,
    runs,
    safekeeping,
    two_factor,
    ui_api,
    users,
    volume_restore,
)
from mackuper.web import health as health_check
from mackuper.web import job_alerts as job_alerts_api
from mackuper.web import metrics as metrics_api
from mackuper.web import notifications as notifications_api
from mackuper.web import restore as restore_pages
from mackuper.web import settings as installation_settings
from mackuper.web import ssh as ssh_api
from mackuper.web import tokens as api_tokens
from mackuper.web.database import close_db
from mackuper.web.security import init_security, session_user_id
from mackuper.web.sessions import REMEMBER_FOR
from mackuper.web.setup_state import admin_exists, setup_complete
from mackuper.web.tokens import bearer_token

logger = logging.getLogger(__name__)


def create_app(runtime: Runtime | None = None, config: dict[str, Any] | None = None) -> Flask:
    runtime = runtime or open_runtime()
    settings = runtime.settings
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.https_enabled,
        SESSION_COOKIE_NAME="mackuper_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_DURATION=REMEMBER_FOR,
        REMEMBER_COOKIE_SECURE=settings.https_enabled,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.config.update(config or {})
    if settings.https_enabled:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    app.extensions["mackuper"] = runtime
    app.teardown_appcontext(close_db)
    init_security(app, api_tokens.user_for_bearer)
    app.before_request(_require_login)
    two_factor.install(app)
    json_input.install(app)
    audit.install(app)
    oidc.install(app)
    for blueprint in (
        auth.blueprint,
        destinations.blueprint,
        jobs.blueprint,
        encryption.blueprint,
        runs.blueprint,
        pages.blueprint,
        ui_api.blueprint,
        restore_pages.blueprint,
        ssh_api.blueprint,
        databases.blueprint,
        containers.blueprint,
        volume_restore.blueprint,
        api_tokens.blueprint,
        users.blueprint,
        two_factor.blueprint,
        oidc.blueprint,
        invitations.blueprint,
        audit.blueprint,
        notifications_api.blueprint,
        job_alerts_api.blueprint,
        metrics_api.blueprint,
        installation_settings.blueprint,
        safekeeping.blueprint,
        anomalies.blueprint,
        openapi.blueprint,
    ):
        app.register_blueprint(blueprint)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.jinja_env.globals["version"] = __version__
    health_check.install(app)
    if settings.https_enabled:
        app.after_request(_hsts)
    return app


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _require_login() -> WerkzeugResponse | None:
    endpoint = request.endpoint or ""
    if access.is_public(endpoint):
        return None
    if not admin_exists():
        if _wants_json():
            return _json_error("Finish the setup wizard first.", 409)
        return redirect("/setup")
    if bearer_token() is not None:
        if not current_user.is_authenticated or session_user_id() is not None:
            return _json_error(api_tokens.bearer_refusal(), 401)
        return access.refusal(request.endpoint)
    if not current_user.is_authenticated:
        if _wants_json():
            return _json_error("Log in first.", 401)
        return redirect("/login")
    if not setup_complete() and not _wants_json() and endpoint != "auth.setup_page":
        return redirect("/setup")
    return access.refusal(request.endpoint)


def _json_error(message: str, status: int) -> WerkzeugResponse:
    response = jsonify(error=message)
    response.status_code = status
    return response


def _http_error(error: HTTPException) -> WerkzeugResponse:
    if error.response is not None:
        return cast(WerkzeugResponse, error.response)
    if _wants_json():
        return _json_error(error.description or error.name, error.code or 500)
    return error.get_response()


def _unexpected_error(error: Exception) -> WerkzeugResponse:
    logger.exception("unhandled error on %s %s", request.method, request.path)
    message = "Something went wrong on the server; the details are in the server log."
    if _wants_json():
        return _json_error(message, 500)
    return WerkzeugResponse(message, status=500, mimetype="text/plain")


def _hsts(response: WerkzeugResponse) -> WerkzeugResponse:
    response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
