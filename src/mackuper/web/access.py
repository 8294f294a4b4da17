"""Who may call what: one table, `RULES`, maps every endpoint to the rule it needs.

A request passes the table in `app.before_request` after it is authenticated (by
session cookie or API token), so no view repeats the check. An endpoint missing
from the table is refused (403, logged as a server error): a new route is closed
until someone writes its rule, and tests/unit/test_roles.py fails until then.

Roles (models.Role) are ordered: viewer < operator < administrator. A request's
role is its user's, or for an API token the lower of the token's and its user's.

    PUBLIC       anyone, logged in or not (login, setup, health)
    SIGNED_IN    any logged-in user, whatever the role (their own password, tokens)
    DOWNLOAD     operators and administrators, and viewers an administrator allowed
    a Role       that role or a higher one

Two rules depend on the request's content and are kept here too, called by the
views that see it: pre/post commands are changed by administrators only
(`require_commands_change`), and operators restore only into the folders an
administrator allowed them (`check_restore_target`).
"""

from __future__ import annotations

import enum
import logging
import os.path
from typing import NoReturn

from flask import current_app, jsonify, request
from flask_login import current_user
from werkzeug.wrappers import Response

from mackuper.models import Role
from mackuper.schemas.api import RestoreTarget
from mackuper.web.forms import fail

logger = logging.getLogger(__name__)


class Access(enum.Enum):
    PUBLIC = "public"
    SIGNED_IN = "signed in"
    DOWNLOAD = "download"


Rule = Access | Role

PUBLIC = Access.PUBLIC
SIGNED_IN = Access.SIGNED_IN
DOWNLOAD = Access.DOWNLOAD
VIEWER = Role.VIEWER
OPERATOR = Role.OPERATOR
ADMINISTRATOR = Role.ADMINISTRATOR

RULES: dict[str, Rule] = {
    # Anyone
    "static": PUBLIC,
    "pages.health": PUBLIC,
    "pages.liveness": PUBLIC,
    "metrics.metrics": PUBLIC,
    "auth.login_page": PUBLIC,
    "auth.login": PUBLIC,
    "auth.setup_page": PUBLIC,
    "auth.setup_status": PUBLIC,
    "auth.setup_admin": PUBLIC,
    # The login's second step: only a browser whose password was right gets further
    "auth.second_step_page": PUBLIC,
    "auth.second_step_code": PUBLIC,
    "auth.passkey_login_options": PUBLIC,
    "auth.passkey_login": PUBLIC,
    "sso.login": PUBLIC,
    "sso.callback": PUBLIC,
    "invitations.page": PUBLIC,
    "invitations.lookup_invitation": PUBLIC,
    "invitations.accept_invitation": PUBLIC,
    # Any logged-in user: their own session, password and tokens
    "auth.logout": SIGNED_IN,
    "auth.change_password": SIGNED_IN,
    "tokens.list_tokens": SIGNED_IN,
    "tokens.create_token": SIGNED_IN,
    "tokens.revoke_token": SIGNED_IN,
    "two_factor.page": SIGNED_IN,
    "two_factor.status": SIGNED_IN,
    "two_factor.start_totp": SIGNED_IN,
    "two_factor.confirm_totp": SIGNED_IN,
    "two_factor.disable_totp": SIGNED_IN,
    "two_factor.renew_recovery_codes": SIGNED_IN,
    "two_factor.passkey_options": SIGNED_IN,
    "two_factor.add_passkey": SIGNED_IN,
    "two_factor.remove_passkey": SIGNED_IN,
    # Viewers: pages, dashboards, history, logs, the catalog (never a secret)
    "pages.dashboard": VIEWER,
    "pages.history": VIEWER,
    "pages.jobs": VIEWER,
    "pages.run": VIEWER,
    "pages.settings": VIEWER,
    "pages.about": VIEWER,
    "restore.page": VIEWER,
    "openapi.reference_page": VIEWER,
    "openapi.openapi_json": VIEWER,
    "runs.dashboard": VIEWER,
    "runs.list_runs": VIEWER,
    "runs.get_run": VIEWER,
    "runs.run_log": VIEWER,
    "ui_api.chart": VIEWER,
    "ui_api.jobs_overview": VIEWER,
    "ui_api.estimate": VIEWER,
    "ui_api.status": VIEWER,
    "ui_api.workers": VIEWER,
    "jobs.list_jobs": VIEWER,
    "jobs.get_job": VIEWER,
    "jobs.preview_schedule": VIEWER,
    "jobs.preview_retention": VIEWER,
    "anomalies.get_anomaly": VIEWER,
    "anomalies.list_anomalies": VIEWER,
    "job_alerts.get_alerts": VIEWER,
    "destinations.list_destinations": VIEWER,
    "destinations.get_destination": VIEWER,
    "notifications.list_channels": VIEWER,
    "notifications.get_channel": VIEWER,
    "restore.list_backups": VIEWER,
    "restore.get_backup": VIEWER,
    "restore.backup_tree": VIEWER,
    "restore.get_verify_schedule": VIEWER,
    "installation_settings.get_settings": VIEWER,
    "containers.get_engine": VIEWER,
    # Downloads: the backups' contents
    "restore.download_backup": DOWNLOAD,
    "restore.download_url": DOWNLOAD,
    "restore.extract_from_backup": DOWNLOAD,
    "restore.extract_with_key": DOWNLOAD,
    "databases.download_dump": DOWNLOAD,
    "databases.download_dump_with_key": DOWNLOAD,
    # Operators: jobs, runs, restores, verifications
    "jobs.create_job": OPERATOR,
    "jobs.update_job": OPERATOR,
    "jobs.delete_job": OPERATOR,
    "jobs.set_enabled": OPERATOR,
    "jobs.run_now": OPERATOR,
    "anomalies.acknowledge_anomaly": OPERATOR,
    "job_alerts.update_alerts": OPERATOR,
    "runs.cancel_run": OPERATOR,
    "restore.start_restore": OPERATOR,
    "restore.backup_tree_with_key": OPERATOR,
    "restore.start_verify": OPERATOR,
    "restore.set_verify_schedule": OPERATOR,
    "restore.import_from_destination": OPERATOR,
    "destinations.test_saved": OPERATOR,
    "encryption.new_identity": OPERATOR,
    "ssh.test_connection": OPERATOR,
    "databases.test_connection": OPERATOR,
    "databases.test_mariadb": OPERATOR,
    "databases.test_sqlite": OPERATOR,
    "databases.test_redis": OPERATOR,
    "containers.list_containers": OPERATOR,
    # Administrators: destinations, alert channels, settings, keys, users, the audit log
    "auth.setup_finish": ADMINISTRATOR,
    # A database restore writes to any server it is pointed at, replacing objects.
    "databases.start_database_restore": ADMINISTRATOR,
    # A volume restore writes into any volume of the engine; its check looks inside one.
    "volume_restore.check_volume_target": ADMINISTRATOR,
    "volume_restore.start_volume_restore": ADMINISTRATOR,
    "destinations.create_destination": ADMINISTRATOR,
    "destinations.update_destination": ADMINISTRATOR,
    "destinations.delete_destination": ADMINISTRATOR,
    "destinations.test_unsaved": ADMINISTRATOR,
    "notifications.create_channel": ADMINISTRATOR,
    "notifications.update_channel": ADMINISTRATOR,
    "notifications.delete_channel": ADMINISTRATOR,
    "notifications.test_saved": ADMINISTRATOR,
    "notifications.test_unsaved": ADMINISTRATOR,
    "runs.clean_history": ADMINISTRATOR,
    "installation_settings.update_settings": ADMINISTRATOR,
    # The engine's API is root on its host: only administrators point Mackuper at one.
    "containers.update_engine": ADMINISTRATOR,
    "containers.test_engine": ADMINISTRATOR,
    "safekeeping.export_configuration": ADMINISTRATOR,
    "safekeeping.master_key_origin": ADMINISTRATOR,
    "safekeeping.reveal_master_key": ADMINISTRATOR,
    "two_factor.get_policy": ADMINISTRATOR,
    "two_factor.set_policy": ADMINISTRATOR,
    "users.page": ADMINISTRATOR,
    "users.list_users": ADMINISTRATOR,
    "users.create_user": ADMINISTRATOR,
    "users.update_user": ADMINISTRATOR,
    "users.reset_password": ADMINISTRATOR,
    "users.delete_user": ADMINISTRATOR,
    "sso.get_settings": ADMINISTRATOR,
    "sso.update_settings": ADMINISTRATOR,
    "invitations.list_invitations": ADMINISTRATOR,
    "invitations.create_invitation": ADMINISTRATOR,
    "invitations.revoke_invitation": ADMINISTRATOR,
    "audit.page": ADMINISTRATOR,
    "audit.list_events": ADMINISTRATOR,
    "audit.export_events": ADMINISTRATOR,
    "audit.get_retention": ADMINISTRATOR,
    "audit.set_retention": ADMINISTRATOR,
}


def rule_of(endpoint: str | None) -> Rule | None:
    return RULES.get(endpoint or "")


def public_endpoints() -> set[str]:
    return {endpoint for endpoint, rule in RULES.items() if rule is PUBLIC}


def is_public(endpoint: str | None) -> bool:
    return rule_of(endpoint) is PUBLIC


def current_role() -> Role | None:
    """The role this request acts with, or None when nobody is logged in."""
    if not current_user.is_authenticated:
        return None
    role: Role = current_user.role
    return role


def may(rule: Rule) -> bool:
    """Whether this (authenticated) request passes `rule`."""
    role = current_role()
    if rule is PUBLIC:
        return True
    if role is None:
        return False
    if rule is SIGNED_IN:
        return True
    if rule is DOWNLOAD:
        return role.at_least(OPERATOR) or bool(current_user.user.can_download)
    return isinstance(rule, Role) and role.at_least(rule)


def refusal(endpoint: str | None) -> Response | None:
    """A 403 answer when this authenticated request may not reach `endpoint`, else None.

    Requests that match no route (endpoint None) pass on to Flask's 404 or 405.
    """
    if endpoint is None:
        return None
    rule = rule_of(endpoint)
    if rule is None:
        logger.error("no access rule for endpoint %s: refused (add it to web/access.py)", endpoint)
        return _forbidden("This page has no access rule yet; it stays closed.")
    if may(rule):
        return None
    if rule is DOWNLOAD:
        return _forbidden("Your account may not download backups; ask an administrator.")
    return _forbidden(f"This needs the {rule.value} role; your account is {current_role()}.")


def _forbidden(message: str) -> Response:
    if request.path.startswith("/api/"):
        response = jsonify(error=message)
    else:
        response = current_app.response_class(message, mimetype="text/plain")
    response.status_code = 403
    return response


def _refuse(message: str) -> NoReturn:
    fail(message, 403)


def require_commands_change() -> None:
    """Called when a request changes a job's pre/post commands: administrators only."""
    if current_role() is not ADMINISTRATOR:
        _refuse("Only an administrator may change a job's pre- and post-backup commands.")


def check_restore_target(target: RestoreTarget) -> None:
    """Administrators restore anywhere; an operator only into a local folder (or below)
    that an administrator allowed them, never over the source or to another host."""
    if current_role() is ADMINISTRATOR:
        return
    allowed = [str(folder) for folder in current_user.user.restore_targets or []]
    if target.kind != "local" or target.same_as_source:
        _refuse("Operators restore only into the folders an administrator allowed them.")
    path = os.path.realpath(target.path) if os.path.isabs(target.path) else ""
    for folder in allowed:
        base = os.path.realpath(folder)
        if path and os.path.commonpath([base, path]) == base:
            return
    choices = ", ".join(allowed) if allowed else "none yet; ask an administrator"
    _refuse(f"Operators restore only into the folders allowed to them ({choices}).")
