"""Database sources: "Test connection" for PostgreSQL, and restoring a dump into a database."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from mackuper.destinations.base import DestinationError
from mackuper.models import Artifact, ArtifactState, Job, RunTrigger
from mackuper.restore.errors import RestoreError
from mackuper.restore.manifest import read_manifest, unsealed
from mackuper.restore.stored import stored_archive
from mackuper.runs.database_restore import dumped_databases, queue_database_restore
from mackuper.schemas.answers import RunAnswer
from mackuper.schemas.databases import DatabaseRestoreBody, PostgresProbeResult, PostgresTestBody
from mackuper.schemas.sources import PostgresConnection
from mackuper.sources import postgres
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors, parse
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import run_json

logger = logging.getLogger(__name__)
blueprint = Blueprint("databases", __name__, url_prefix="/api")


def _stored_source(job_id: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The public settings and secrets of a PostgreSQL job ({} and {} for any other)."""
    job = get_db().get(Job, job_id) if job_id is not None else None
    if job is None or job.source_kind != "postgresql":
        return {}, {}
    return job.source_config, runtime().secrets.decrypt(job.source_secrets_encrypted)


@blueprint.post("/postgresql/test")
@login_required
@operation(
    "Test a PostgreSQL source: log in, the server version, its databases, and whether"
    " this worker's pg_dump can dump it",
    body=PostgresTestBody,
    responses={200: PostgresProbeResult},
)
def test_connection(body: PostgresTestBody) -> Response:
    source: PostgresConnection = parse(PostgresConnection, body.source, ("source",))
    source = source.keep_stored(_stored_source(body.job_id)[1])
    connection = postgres.PostgresConnection(
        source.host, source.port, source.username, source.password, source.maintenance_database
    )
    found = postgres.probe(connection)
    logger.info("postgresql connection test to %s:%s: %s", source.host, source.port, found.ok)
    return jsonify(
        ok=found.ok,
        message=found.message,
        server_version=found.server_version,
        databases=found.databases,
        pg_dump_version=found.pg_dump_version,
    )


def _given(body: DatabaseRestoreBody) -> dict[str, str]:
    """A key or passphrase for an encrypted backup, as restore runs keep them."""
    if body.decryption is None:
        return {}
    given = {
        "key_identity": body.decryption.identity,
        "key_passphrase": body.decryption.passphrase,
    }
    return {name: value for name, value in given.items() if value}


@blueprint.post("/restore/database")
@login_required
@operation(
    "Queue a restore of one database dump from a backup into a new or an existing database",
    body=DatabaseRestoreBody,
    responses={202: RunAnswer},
)
def start_database_restore(body: DatabaseRestoreBody) -> tuple[Response, int]:
    """A new database is made and must not exist yet; restoring into an existing one
    replaces the objects the dump holds and needs its name typed again in `confirm`."""
    target = body.target
    errors: dict[str, str] = {}
    if target.existing and target.confirm != target.database:
        errors["target.confirm"] = (
            f"Type {target.database} to confirm that the objects of the dump replace"
            " those in this database."
        )
    if not target.same_as_source:
        if not target.host:
            errors["target.host"] = "Enter the PostgreSQL host."
        if not target.username:
            errors["target.username"] = "Enter the PostgreSQL user name."
    if errors:
        field_errors(errors)
    artifact = get_db().get(Artifact, body.artifact_id)
    if artifact is None or artifact.state != ArtifactState.STORED.value:
        fail("No such stored backup.", 404)
    job = get_db().get(Job, artifact.job_id) if artifact.job_id is not None else None
    if target.same_as_source and (job is None or job.source_kind != "postgresql"):
        field_errors(
            {
                "target.same_as_source": "This backup's job no longer has a PostgreSQL server:"
                " enter the server to restore to."
            }
        )
    given = _given(body)
    try:
        archive = stored_archive(runtime(), get_db(), artifact, given)
        manifest = unsealed(read_manifest(archive.destination, archive.key), archive.keys)
    except (RestoreError, DestinationError) as error:
        fail(str(error)[:1].upper() + str(error)[1:], 409)
    if "sealed_age" in manifest and "databases" not in manifest:
        field_errors(
            {"decryption": "This backup is encrypted: give the key or passphrase that opens it."}
        )
    names = [item["database"] for item in dumped_databases(manifest)]
    if body.database not in names:
        message = (
            "This backup holds no database dump."
            if not names
            else f"This backup holds no dump of {body.database}: it has {', '.join(names)}."
        )
        field_errors({"database": message})
    details = {
        "database": body.database,
        "target": target.model_dump(
            mode="json", exclude={"password", "confirm"}, exclude_defaults=False
        ),
    }
    secrets = dict(given)
    if target.password and not target.same_as_source:
        secrets["password"] = target.password
    run = queue_database_restore(get_db(), runtime(), artifact, details, secrets, RunTrigger.MANUAL)
    return jsonify(run=run_json(run)), 202
