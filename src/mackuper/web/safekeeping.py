"""Settings → Keep safe: the master key, and the configuration without secrets.

Every stored credential (and a job's passphrase or stored private key) is encrypted
with the master key, which is not in the database: lose `master.key` and a restored
database cannot use any of them. So the Settings page says so and offers the key,
but only after the password is typed again (a left-open browser is not enough); the
log records who took it, never the key. The export is the configuration a person
would re-create by hand (destinations, jobs, alert channels, installation settings,
single sign-on),
with every secret shown only as "set" or "not set", exactly as the API shows them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, jsonify
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from mackuper.destinations.base import content_disposition
from mackuper.models import Destination, Job, NotificationChannel, User
from mackuper.passwords import verify_password
from mackuper.schemas.answers import ConfigurationExport, MasterKey, MasterKeyOrigin
from mackuper.schemas.api import MasterKeyBody
from mackuper.secretbox import load_master_key
from mackuper.web import oidc
from mackuper.web import settings as installation_settings
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import field_errors
from mackuper.web.notifications import channel_json
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import destination_json, job_json

blueprint = Blueprint("safekeeping", __name__, url_prefix="/api/settings")
logger = logging.getLogger(__name__)

EXPORT_WARNING = (
    "This file holds no secrets: S3 keys, SSH passwords and keys, encryption passphrases,"
    " stored private keys and alert URLs are shown only as set or not set, and must be"
    " entered again. It does not replace the master key or a backup of the data directory."
)


def _origin() -> dict[str, str | None]:
    settings = runtime().settings
    if settings.master_key is not None:
        return {"origin": "environment", "path": None}
    return {"origin": "file", "path": str(settings.master_key_file)}


@blueprint.get("/master-key")
@login_required
@operation("Where the master key comes from (never the key)", responses={200: MasterKeyOrigin})
def master_key_origin() -> Response:
    return jsonify(_origin())


@blueprint.post("/master-key")
@login_required
@operation(
    "The master key itself, after the password is given again",
    body=MasterKeyBody,
    responses={200: MasterKey},
)
def reveal_master_key(body: MasterKeyBody) -> Response:
    """403 with a field message when the password is wrong; the answer is never cached."""
    user: User = current_user.user
    if not verify_password(user.password_hash, body.password):
        field_errors({"password": "The password is wrong."}, 403)
    key = load_master_key(runtime().settings, create=False).decode()
    logger.warning("user %s took a copy of the master key", user.username)
    response = jsonify(master_key=key, filename="mackuper-master.key", **_origin())
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/export")
@login_required
@operation(
    "The configuration without secrets, as a file to keep",
    responses={200: ConfigurationExport},
)
def export_configuration() -> Response:
    session = get_db()
    now = datetime.now(UTC)
    response = jsonify(
        mackuper_export=1,
        exported_at=now.isoformat(),
        warning=EXPORT_WARNING,
        installation=installation_settings.current(),
        destinations=[
            destination_json(row, runtime())
            for row in session.scalars(select(Destination).order_by(Destination.id))
        ],
        jobs=[job_json(job) for job in session.scalars(select(Job).order_by(Job.id))],
        notification_channels=[
            channel_json(channel)
            for channel in session.scalars(
                select(NotificationChannel).order_by(NotificationChannel.id)
            )
        ],
        single_sign_on=oidc.exported_settings(session),
    )
    filename = f"mackuper-configuration-{now:%Y%m%d}.json"
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["Cache-Control"] = "no-store"
    return response
