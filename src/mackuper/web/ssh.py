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
from mackuper.schemas.answers import SSHProbeResult
from mackuper.schemas.api import SSHTestBody
from mackuper.schemas.sources import SSHProbe, parse_host_key
from mackuper.sources.ssh_probe import probe
from mackuper.ssh import SSHTarget
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import field_errors, parse
from mackuper.web.operations import operation
from mackuper.web.security import login_required

logger = logging.getLogger(__name__)
blueprint = Blueprint("ssh", __name__, url_prefix="/api/ssh")


def _stored_secrets(job_id: int | None) -> dict[str, Any]:
    if job_id is None:
        return {}
    job = get_db().get(Job, job_id)
    if job is None or job.source_kind != "ssh":
        return {}
    return runtime().secrets.decrypt(job.source_secrets_encrypted)


@blueprint.post("/test")
@login_required
@operation(
    "Test an SSH source: the server's host key, then login and paths",
    body=SSHTestBody,
    responses={200: SSHProbeResult},
)
def test_connection(body: SSHTestBody) -> Response:
    """Key type and fingerprint of the server, and (if trusted) login and path checks.

    Only what a connection needs is checked; a host key that does not parse is
    treated as none trusted yet.
    """
    source: SSHProbe = parse(SSHProbe, body.source, ("source",))
    source = source.keep_stored(_stored_secrets(body.job_id))
    if problems := source.problems():
        field_errors(problems)
    try:
        pinned = parse_host_key(source.host_key) if source.host_key else ""
    except ValueError:
        pinned = ""
    target = SSHTarget.from_config({**source.public(), "host_key": pinned}, source.secrets())
    result = probe(target, source.paths)
    logger.info("ssh connection test to %s: %s", target.address, result.status)
    return jsonify(result.as_json())
