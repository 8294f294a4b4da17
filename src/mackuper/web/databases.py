"""Database sources: "Test connection", restoring a dump into a database, and
downloading a dump alone."""

from __future__ import annotations

import logging
import posixpath
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from mackuper.destinations.base import DestinationError, content_disposition
from mackuper.models import Artifact, ArtifactState, Job, RunTrigger
from mackuper.restore.archives import StoredArchive
from mackuper.restore.download import database_dump
from mackuper.restore.errors import RestoreError
from mackuper.restore.manifest import read_manifest, unsealed
from mackuper.restore.stored import stored_archive
from mackuper.runs.database_restore import (
    dump_kind,
    dumped_databases,
    queue_database_restore,
    restore_plan,
)
from mackuper.schemas.answers import RunAnswer
from mackuper.schemas.databases import (
    DatabaseProbeResult,
    DatabaseRestoreBody,
    DatabaseTarget,
    DumpBody,
    DumpQuery,
    MariaDBTestBody,
    PostgresProbeResult,
    PostgresTestBody,
    RedisTestBody,
    SQLiteTestBody,
)
from mackuper.schemas.sources import (
    DatabaseSSH,
    MariaDBSource,
    PostgresSource,
    RedisSource,
    SQLiteSource,
)
from mackuper.sources import mariadb, postgres, redis, sqlite
from mackuper.sources.dump import Probe
from mackuper.sources.remote import ssh_target
from mackuper.ssh import SSHTarget
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors, json_body, parse
from mackuper.web.operations import BINARY, operation
from mackuper.web.security import login_required
from mackuper.web.serialize import run_json

logger = logging.getLogger(__name__)
blueprint = Blueprint("databases", __name__, url_prefix="/api")


def _stored_source(
    job_id: int | None, kind: str = "postgresql"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The public settings and secrets of a job of `kind` ({} and {} for any other)."""
    job = get_db().get(Job, job_id) if job_id is not None else None
    if job is None or job.source_kind != kind:
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
    source: PostgresSource = parse(PostgresSource, body.source, ("source",))
    source = source.keep_stored(_stored_source(body.job_id)[1])
    connection = postgres.PostgresConnection(
        source.host,
        source.port,
        source.username,
        source.password,
        source.maintenance_database,
        _ssh_of(source),
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


def _ssh_of(source: DatabaseSSH) -> SSHTarget | None:
    """The SSH host the source's tools run on, as a backup would reach it; a 422 on the
    field when its settings are incomplete (a host key not trusted yet, say)."""
    if not source.ssh_host:
        return None
    if problems := source.problems():
        field_errors({f"source.{name}": message for name, message in problems.items()})
    settings = source.model_dump()
    return ssh_target(settings, settings)


def _probe_answer(kind: str, where: str, found: Probe) -> Response:
    logger.info("%s connection test to %s: %s", kind, where, found.ok)
    return jsonify(
        ok=found.ok,
        message=found.message,
        server_version=found.server_version,
        databases=found.databases,
        dump_tool=found.dump_tool,
    )


@blueprint.post("/mariadb/test")
@login_required
@operation(
    "Test a MariaDB or MySQL source: log in, the server version, its databases, and"
    " whether this worker's mariadb-dump fits it",
    body=MariaDBTestBody,
    responses={200: DatabaseProbeResult},
)
def test_mariadb(body: MariaDBTestBody) -> Response:
    source: MariaDBSource = parse(MariaDBSource, body.source, ("source",))
    source = source.keep_stored(_stored_source(body.job_id, "mariadb")[1])
    connection = mariadb.MariaDBConnection(
        source.host, source.port, source.username, source.password, _ssh_of(source)
    )
    return _probe_answer("mariadb", f"{source.host}:{source.port}", mariadb.probe(connection))


@blueprint.post("/sqlite/test")
@login_required
@operation(
    "Test an SQLite source: open each database file read-only as the backup will, its"
    " tables and journal mode, and this worker's sqlite3",
    body=SQLiteTestBody,
    responses={200: DatabaseProbeResult},
)
def test_sqlite(body: SQLiteTestBody) -> Response:
    source: SQLiteSource = parse(SQLiteSource, body.source, ("source",))
    source = source.keep_stored(_stored_source(body.job_id, "sqlite")[1])
    found = sqlite.probe(source.paths, _ssh_of(source))
    return _probe_answer("sqlite", f"{len(source.paths)} file(s)", found)


@blueprint.post("/redis/test")
@login_required
@operation(
    "Test a Redis source: log in, the server version, its databases with keys, and"
    " this worker's redis-cli",
    body=RedisTestBody,
    responses={200: DatabaseProbeResult},
)
def test_redis(body: RedisTestBody) -> Response:
    source: RedisSource = parse(RedisSource, body.source, ("source",))
    source = source.keep_stored(_stored_source(body.job_id, "redis")[1])
    found = redis.probe(source.host, source.port, source.username, source.password, _ssh_of(source))
    return _probe_answer("redis", f"{source.host}:{source.port}", found)


def _given(body: DatabaseRestoreBody | DumpBody) -> dict[str, str]:
    """A key or passphrase for an encrypted backup, as restore runs keep them."""
    if body.decryption is None:
        return {}
    given = {
        "key_identity": body.decryption.identity,
        "key_passphrase": body.decryption.passphrase,
    }
    return {name: value for name, value in given.items() if value}


def _sentence(error: Exception) -> str:
    text = str(error)
    return text[:1].upper() + text[1:]


def _stored(artifact_id: int) -> Artifact:
    artifact = get_db().get(Artifact, artifact_id)
    if artifact is None or artifact.state != ArtifactState.STORED.value:
        fail("No such stored backup.", 404)
    return artifact


def _dump(
    artifact: Artifact, given: dict[str, str], database: str
) -> tuple[StoredArchive, dict[str, Any], dict[str, Any]]:
    """The archive, its (unsealed) manifest and the manifest's item for the dump of
    `database`; a 422 naming the field when the key is missing or the dump is not there."""
    try:
        archive = stored_archive(runtime(), get_db(), artifact, given)
        manifest = unsealed(read_manifest(archive.destination, archive.key), archive.keys)
    except (RestoreError, DestinationError) as error:
        fail(_sentence(error), 409)
    if "sealed_age" in manifest and "databases" not in manifest:
        field_errors(
            {"decryption": "This backup is encrypted: give the key or passphrase that opens it."}
        )
    items = dumped_databases(manifest)
    item = next((item for item in items if item["database"] == database), None)
    if item is None:
        names = [item["database"] for item in items]
        message = (
            "This backup holds no database dump."
            if not names
            else f"This backup holds no dump of {database}: it has {', '.join(names)}."
        )
        field_errors({"database": message})
    return archive, manifest, item


def _send_dump(artifact: Artifact, given: dict[str, str], database: str) -> Response:
    archive, manifest, item = _dump(artifact, given, database)
    size = item.get("size")
    try:
        download = database_dump(
            archive, manifest, str(item["path"]), size if isinstance(size, int) else None
        )
    except (RestoreError, DestinationError) as error:
        fail(_sentence(error), 409)
    headers = {"Content-Disposition": content_disposition(download.filename)}
    if download.size is not None:
        headers["Content-Length"] = str(download.size)
    return Response(
        download.body, mimetype=download.content_type, headers=headers, direct_passthrough=True
    )


@blueprint.get("/backups/<int:artifact_id>/dump")
@login_required
@operation(
    "Download one database's dump from a backup as one file (its parts joined,"
    " decompressed), for the database's own restore tool",
    query=DumpQuery,
    responses={200: BINARY},
)
def download_dump(artifact_id: int, query: DumpQuery) -> Response:
    return _send_dump(_stored(artifact_id), {}, query.database)


@blueprint.post("/backups/<int:artifact_id>/dump")
@login_required
@operation(
    "Download one database's dump from an encrypted backup, with its key",
    body=DumpBody,
    responses={200: BINARY},
    parse_body=False,
)
def download_dump_with_key(artifact_id: int) -> Response:
    """The body is JSON, or the form the Restore page posts (`database`, `identity`) so
    that the browser streams the download; the key is used for this request only,
    never stored or logged."""
    if request.is_json:
        body = parse(DumpBody, json_body())
    else:
        body = parse(
            DumpBody,
            {
                "database": request.form.get("database", ""),
                "decryption": {"identity": request.form.get("identity", "")},
            },
        )
    return _send_dump(_stored(artifact_id), _given(body), body.database)


NAME_LIMITS = {"postgresql": 63, "mariadb": 64}
"""The longest database name each server takes (PostgreSQL counts bytes)."""
SERVER_NAMES = {"postgresql": "PostgreSQL", "mariadb": "MariaDB"}


def _target_errors(target: DatabaseTarget, kind: str) -> dict[str, str]:
    """What is wrong with where a dump of `kind` should go, by field."""
    errors: dict[str, str] = {}
    if kind == "sqlite":
        if not posixpath.isabs(target.database):
            errors["target.database"] = (
                "Enter the absolute path of the SQLite database file on the worker."
            )
    elif kind in NAME_LIMITS and len(target.database.encode()) > NAME_LIMITS[kind]:
        errors["target.database"] = (
            f"A {SERVER_NAMES[kind]} database name has at most {NAME_LIMITS[kind]} characters."
        )
    if target.existing and target.confirm != target.database:
        errors["target.confirm"] = (
            f"Type {target.database} to confirm that the objects of the dump replace"
            " those in this database."
        )
    if kind in SERVER_NAMES and not target.same_as_source:
        if not target.host:
            errors["target.host"] = f"Enter the {SERVER_NAMES[kind]} host."
        if not target.username:
            errors["target.username"] = f"Enter the {SERVER_NAMES[kind]} user name."
    return errors


@blueprint.post("/restore/database")
@login_required
@operation(
    "Queue a restore of one database dump from a backup into a new or an existing database"
    " (PostgreSQL, MariaDB, SQLite; a Redis snapshot is downloaded instead)",
    body=DatabaseRestoreBody,
    responses={202: RunAnswer},
)
def start_database_restore(body: DatabaseRestoreBody) -> tuple[Response, int]:
    """A new database is made and must not exist yet; restoring into an existing one
    replaces the objects the dump holds and needs its name typed again in `confirm`.
    Both are checked against the server (or the file) now, before anything is queued."""
    target = body.target
    if target.existing and target.confirm != target.database:
        field_errors(_target_errors(target, ""))
    artifact = _stored(body.artifact_id)
    given = _given(body)
    _archive, _manifest, dump = _dump(artifact, given, body.database)
    kind = dump_kind(str(dump["path"]))
    if errors := _target_errors(target, kind):
        field_errors(errors)
    job = get_db().get(Job, artifact.job_id) if artifact.job_id is not None else None
    secrets = dict(given)
    if target.password and not target.same_as_source:
        secrets["password"] = target.password
    details_target = target.model_dump(mode="json", exclude={"password", "confirm"})
    try:
        plan = restore_plan(runtime(), job, dump, details_target, secrets)
    except RestoreError as error:
        field = "target.same_as_source" if "no longer backs up" in str(error) else "database"
        field_errors({field: _sentence(error)})
    try:
        plan.check()
    except RestoreError as error:
        message = _sentence(error)
        if "already exists" in message or "does not exist" in message:
            field_errors({"target.database": message})
        fail(message, 409)
    details = {"database": body.database, "target": details_target}
    run = queue_database_restore(get_db(), runtime(), artifact, details, secrets, RunTrigger.MANUAL)
    return jsonify(run=run_json(run)), 202
