"""Restoring a database dump from a backup: a restore run whose target is a database.

It shares the restore kind's lane, slot and labels (a database restore needs no
worker label: it writes to a server, not beside a job's files) and is told apart by
`details["target"]["kind"] == "database"`. `Run.details` holds where it goes (never
the password: a password given for one restore is kept encrypted with the master key;
"same as source" uses the job's stored login).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from mackuper.destinations.base import DestinationError
from mackuper.models import Artifact, Job, Run, RunStatus, RunTrigger
from mackuper.pipeline.age import SCRYPT_MAX_WORK_FACTOR
from mackuper.restore.archives import ByteCount, StoredArchive, open_members
from mackuper.restore.database import (
    DatabaseRestore,
    MariaDBRestore,
    PostgresRestore,
    SQLiteRestore,
    restore_database,
)
from mackuper.restore.errors import RestoreError
from mackuper.restore.manifest import read_manifest, unsealed
from mackuper.restore.request import RestoreRequest
from mackuper.restore.stored import stored_archive
from mackuper.runs import enqueue
from mackuper.runs.outcome import Outcome
from mackuper.runs.task import Finished, RunContext
from mackuper.runtime import Runtime
from mackuper.sources import mariadb, postgres, redis, sqlite
from mackuper.sources.mariadb import MariaDBConnection
from mackuper.sources.postgres import PostgresConnection

TARGET_KIND = "database"


def is_database_restore(details: dict[str, Any]) -> bool:
    target = details.get("target")
    return isinstance(target, dict) and target.get("kind") == TARGET_KIND


@dataclass
class DatabaseRestoreWork:
    archive: StoredArchive
    plan: DatabaseRestore


def dumped_databases(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's `databases` list (each with `database`, `path`, `parts`, `size`)."""
    items = manifest.get("databases")
    if not isinstance(items, list):
        return []
    return [
        item
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("database"), str)
        and isinstance(item.get("path"), str)
    ]


def dump_kind(path: str) -> str:
    """The folder a dump is stored in: postgresql, mariadb, sqlite or redis."""
    return path.split("/", 1)[0]


def _login(
    runtime: Runtime, job: Job | None, target: dict[str, Any], secrets: dict[str, str], kind: str
) -> tuple[dict[str, Any], str]:
    """The server's settings and password: the job's stored ones ("same as source"),
    or the target's with the password given for this restore."""
    if target.get("same_as_source", True):
        if job is None or job.source_kind != kind:
            raise RestoreError(f"the job of this backup no longer backs up a {kind} server")
        stored = runtime.secrets.decrypt(job.source_secrets_encrypted)
        return dict(job.source_config), str(stored.get("password", ""))
    return dict(target), secrets.get("password", "")


def restore_plan(
    runtime: Runtime,
    job: Job | None,
    dump: dict[str, Any],
    target: dict[str, Any],
    secrets: dict[str, str],
) -> DatabaseRestore:
    """How the dump the manifest item `dump` describes goes into `target`; RestoreError
    when Mackuper does not restore that kind of dump (it is then downloaded)."""
    path = str(dump["path"])
    kind = dump_kind(path)
    name = str(target["database"])
    create = not target.get("existing")
    if kind == postgres.FOLDER:
        config, password = _login(runtime, job, target, secrets, "postgresql")
        connection = PostgresConnection(
            host=str(config["host"]),
            port=int(config.get("port") or 5432),
            username=str(config["username"]),
            password=password,
            maintenance_database=str(config.get("maintenance_database") or "postgres"),
        )
        dump_format = "custom" if path.endswith(".dump") else "plain"
        return PostgresRestore(name, path, create, connection, dump_format, clean=not create)
    if kind == mariadb.FOLDER:
        if path == mariadb.ALL_NAME:
            raise RestoreError(
                "the whole-server MariaDB dump holds every database under its own name:"
                " download it and feed it to `mariadb` (README, Databases)"
            )
        config, password = _login(runtime, job, target, secrets, "mariadb")
        login = MariaDBConnection(
            str(config["host"]), int(config.get("port") or 3306), str(config["username"]), password
        )
        return MariaDBRestore(name, path, create, login)
    if kind == sqlite.FOLDER:
        return SQLiteRestore(name, path, create)
    if path == redis.NAME:
        raise RestoreError(
            "a Redis snapshot is loaded by a server when it starts, so Mackuper does not"
            " restore it into a running one: download the dump and follow the README's"
            " steps (stop Redis, put the file where its dir and dbfilename point, start it)"
        )
    raise RestoreError(f"Mackuper does not restore {path}: download the dump instead")


class DatabaseRestoreTask:
    """The work of a database restore run (runs/restore.py hands it over)."""

    def prepare(
        self, context: RunContext, session: Session, run: Run, job: Job | None
    ) -> DatabaseRestoreWork:
        """The archive, the dump and the server; RestoreError when one is gone."""
        details = dict(run.details)
        artifact = session.get(Artifact, details.get("artifact_id"))
        if artifact is None:
            raise RestoreError("the backup to restore is no longer in the catalog")
        secrets = context.runtime.secrets.decrypt(details.get("secrets_encrypted"))
        archive = stored_archive(context.runtime, session, artifact, secrets)
        manifest = unsealed(
            read_manifest(archive.destination, archive.key), archive.keys, SCRYPT_MAX_WORK_FACTOR
        )
        wanted = str(details["database"])
        dump = next(
            (item for item in dumped_databases(manifest) if item["database"] == wanted), None
        )
        if dump is None:
            raise RestoreError(f"this backup holds no dump of the database {wanted!r}")
        target = dict(details["target"])
        plan = restore_plan(context.runtime, job, dump, target, secrets)
        return DatabaseRestoreWork(archive, plan)

    def execute(self, context: RunContext, work: DatabaseRestoreWork) -> Finished:
        recorder, plan = context.recorder, work.plan
        how = "a new database" if plan.create else "replacing its objects"
        recorder.log(
            "info",
            f"restoring {plan.dump_path} from {work.archive.key} into {plan.database!r}"
            f" on {plan.where()} ({how})",
        )
        read = ByteCount()
        written = ByteCount()
        with open_members(work.archive, read) as members:
            fed = restore_database(plan, members, recorder.log, written)
        recorder.log("info", f"restored {fed} bytes of dump into {plan.database!r}")
        values: dict[str, object] = {
            "bytes_read": read.count,
            "bytes_written": fed,
            "files_done": 1,
        }
        return Finished(Outcome(RunStatus.SUCCESS, None), values, {"bytes": fed})


def queue_database_restore(
    session: Session,
    runtime: Runtime,
    artifact: Artifact,
    details: dict[str, Any],
    secrets: dict[str, str],
    trigger: RunTrigger,
    wake: bool = True,
) -> Run:
    """Queue a database restore of `artifact` (its password encrypted) and commit, waking
    the workers unless told not to (the CLI runs it itself)."""
    # `path` is what a restore's page shows as its target: user@host:database.
    target = {**details["target"], "kind": TARGET_KIND, "path": target_name(details)}
    request = RestoreRequest({**details, "target": target}, secrets)
    return enqueue.queue_restore(session, runtime, artifact, request, trigger, wake)


def check_database_restore(
    runtime: Runtime, session: Session, artifact: Artifact, details: dict[str, Any]
) -> str | None:
    """Why the restore `details` describe cannot be queued (no such dump, a kind Mackuper
    does not restore, a new database that exists or an existing one that does not), or
    None; for the CLI, whose backups' keys are stored (the web checks with its own)."""
    job = session.get(Job, artifact.job_id) if artifact.job_id is not None else None
    try:
        archive = stored_archive(runtime, session, artifact, {})
        manifest = unsealed(
            read_manifest(archive.destination, archive.key), archive.keys, SCRYPT_MAX_WORK_FACTOR
        )
        wanted = str(details["database"])
        dump = next(
            (item for item in dumped_databases(manifest) if item["database"] == wanted), None
        )
        if dump is None:
            names = ", ".join(item["database"] for item in dumped_databases(manifest))
            return f"this backup holds no dump of {wanted!r}" + (
                f" (it has {names})" if names else ""
            )
        restore_plan(runtime, job, dump, dict(details["target"]), {}).check()
    except (RestoreError, DestinationError) as error:
        return str(error)
    return None


def target_name(details: dict[str, Any]) -> str:
    return str(details["target"]["database"])
