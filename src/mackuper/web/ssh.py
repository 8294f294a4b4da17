"""SSH sources: "Test connection" shows the server's host key and checks login and paths.

The browser pins a key by sending it back as the source's `host_key` (the "Trust this
host key" button), and the job stores it when saved. Nothing is trusted here on its own.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from mackuper.models import Job
from mackuper.sources.registry import split_lines
from mackuper.sources.ssh_connect import SSHTarget
from mackuper.sources.ssh_probe import probe
from mackuper.sources.ssh_validate import validate_ssh
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import field_errors, json_body
from mackuper.web.security import login_required

logger = logging.getLogger(__name__)
blueprint = Blueprint("ssh", __name__, url_prefix="/api/ssh")

# Fields a connection test needs; the others (host key, paths) are what it reports on.
CONNECTION_FIELDS = ("host", "port", "username", "auth", "password", "private_key", "passphrase")


def _stored_secrets(job_id: Any) -> dict[str, Any]:
    if not isinstance(job_id, int):
        return {}
    job = get_db().get(Job, job_id)
    if job is None or job.source_kind != "ssh":
        return {}
    return runtime().secrets.decrypt(job.source_secrets_encrypted)


@blueprint.post("/test")
@login_required
def test_connection() -> Response:
    """Key type and fingerprint of the server, and (if trusted) login and path checks."""
    payload = json_body()
    raw = payload.get("source")
    source: dict[str, Any] = raw if isinstance(raw, dict) else {}
    config, secrets, errors = validate_ssh(
        source, _stored_secrets(payload.get("job_id")), split_lines
    )
    wrong = {name: message for name, message in errors.items() if name in CONNECTION_FIELDS}
    if wrong:
        field_errors(wrong)
    pinned = config["host_key"] if "host_key" not in errors else ""
    target = SSHTarget.from_config({**config, "host_key": pinned}, secrets)
    result = probe(target, config["paths"])
    logger.info("ssh connection test to %s: %s", target.address, result.status)
    return jsonify(result.as_json())
