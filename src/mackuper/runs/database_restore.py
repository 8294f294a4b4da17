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

from mackuper.models import Artifact, Job, Run, RunKind, RunStatus, RunTrigger
from mackuper.pipeline.age import SCRYPT_MAX_WORK_FACTOR
from mackuper.restore.archives import StoredArchive, open_members
from mackuper.restore.database import DatabaseRestore, restore_database
from mackuper.restore.errors import RestoreError
from mackuper.restore.manifest import read_manifest, unsealed
from mackuper.restore.stored import stored_archive
from mackuper.runs import enqueue
from mackuper.runs.outcome import Outcome
from mackuper.runs.task import Finished, RunContext
from mackuper.runtime import Runtime
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


def _connection(
    runtime: Runtime, job: Job | None, target: dict[str, Any], secrets: dict[str, str]
) -> PostgresConnection:
    if target.get("same_as_source"):
        if job is None or job.source_kind != "postgresql":
            raise RestoreError("the job of this backup no longer backs up a PostgreSQL server")
        config = job.source_config
        stored = runtime.secrets.decrypt(job.source_secrets_encrypted)
        return PostgresConnection(
            host=str(config["host"]),
            port=int(config.get("port", 5432)),
            username=str(config["username"]),
            password=str(stored.get("password", "")),
            maintenance_database=str(config.get("maintenance_database") or "postgres"),
        )
    return PostgresConnection(
        host=str(target["host"]),
        port=int(target["port"]),
        username=str(target["username"]),
        password=secrets.get("password", ""),
        maintenance_database=str(target.get("maintenance_database") or "postgres"),
    )


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
        plan = DatabaseRestore(
            connection=_connection(context.runtime, job, target, secrets),
            database=str(target["database"]),
            dump_path=str(dump["path"]),
            dump_format="custom" if str(dump["path"]).endswith(".dump") else "plain",
            create=not target.get("existing"),
            clean=bool(target.get("existing")),
        )
        return DatabaseRestoreWork(archive, plan)

    def execute(self, context: RunContext, work: DatabaseRestoreWork) -> Finished:
        recorder, plan = context.recorder, work.plan
        where = f"{plan.connection.username}@{plan.connection.host}:{plan.connection.port}"
        how = "replacing its objects" if plan.clean else "a new database"
        recorder.log(
            "info",
            f"restoring {plan.dump_path} from {work.archive.key} into {plan.database!r}"
            f" on {where} ({how})",
        )
        read = _Count()
        written = _Count()
        with open_members(work.archive, read) as members:
            fed = restore_database(plan, members, recorder.log, written)
        recorder.log("info", f"restored {fed} bytes of dump into {plan.database!r}")
        values: dict[str, object] = {
            "bytes_read": read.count,
            "bytes_written": fed,
            "files_done": 1,
        }
        return Finished(Outcome(RunStatus.SUCCESS, None), values, {"bytes": fed})


class _Count:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, chunk: bytes | int) -> None:
        self.count += chunk if isinstance(chunk, int) else len(chunk)


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
    stored = {**details, "artifact_id": artifact.id, "archive_key": artifact.key}
    # `path` is what a restore's page shows as its target: user@host:database.
    stored["target"] = {**details["target"], "kind": TARGET_KIND, "path": target_name(details)}
    if secrets:
        stored["secrets_encrypted"] = runtime.secrets.encrypt(secrets)
    run = enqueue._artifact_run(session, artifact, RunKind.RESTORE, stored, trigger)
    enqueue._log_if_stranded(session, run)
    enqueue._commit(session, wake)
    return run


def target_name(details: dict[str, Any]) -> str:
    return str(details["target"]["database"])
