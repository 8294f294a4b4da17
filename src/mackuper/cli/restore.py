"""`mackuper backups|restore|verify|import`: the Restore tab for people without a browser.

Restores and verifications run in this process (no worker needed) through the
same lifecycle as a worker's runs (`mackuper.runs.lifecycle`): claimed, announced,
wrapped in the job's commands and recorded, so they show up in the history with
their log and alert like any other run.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from mackuper.models import (
    Artifact,
    ArtifactState,
    Destination,
    Run,
    RunLog,
    RunStatus,
    RunTrigger,
)
from mackuper.restore.catalog import import_backups
from mackuper.restore.extract import Policy
from mackuper.restore.request import parse_restore
from mackuper.restore.stored import build_destination
from mackuper.restore.volume import check_volume_name
from mackuper.runs import enqueue, lifecycle
from mackuper.runs.database_restore import check_database_restore, queue_database_restore
from mackuper.runs.volume_restore import check_volume_restore, queue_volume_restore
from mackuper.runtime import Runtime

Start = Callable[[str], Runtime]


def add_commands(commands: Any, start: Start) -> None:
    """Register the subcommands on the `mackuper` parser's subparsers."""
    listing = commands.add_parser("backups", help="list stored backups (their ids)")
    listing.add_argument("--job", type=int, help="only this job id")
    listing.set_defaults(handler=lambda args: _list(start("cli"), args))
    restore = commands.add_parser("restore", help="restore a stored backup to a directory")
    restore.add_argument("backup", type=int, help="backup id (see `mackuper backups`)")
    restore.add_argument("--to", required=True, help="absolute directory to restore into")
    restore.add_argument(
        "--path", action="append", default=[], help="restore only this path (repeatable)"
    )
    restore.add_argument(
        "--policy", choices=[item.value for item in Policy], default=Policy.SKIP.value
    )
    restore.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    restore.set_defaults(handler=lambda args: _restore(start("cli"), args))
    database = commands.add_parser(
        "restore-database",
        help="restore one database dump of a backup into a new (or, confirmed, an existing)"
        " database on the job's own PostgreSQL or MariaDB server, or SQLite file",
    )
    database.add_argument("backup", type=int, help="backup id (see `mackuper backups`)")
    database.add_argument("--database", required=True, help="the dumped database's name")
    database.add_argument(
        "--into",
        required=True,
        help="the database to restore into (SQLite: the database file's absolute path)",
    )
    database.add_argument(
        "--replace-existing",
        metavar="NAME",
        help="restore into the existing database NAME (the same as --into), replacing"
        " the objects the dump holds",
    )
    database.set_defaults(handler=lambda args: _restore_database(start("cli"), args))
    volume = commands.add_parser(
        "restore-volume",
        help="restore a backed-up volume (or --path parts of it) into a new volume of the"
        " container engine, or an existing one that no running container uses",
    )
    volume.add_argument("backup", type=int, help="backup id (see `mackuper backups`)")
    volume.add_argument("--volume", required=True, help="the volume's name in the backup")
    volume.add_argument("--into", required=True, help="the volume to restore into")
    volume.add_argument(
        "--existing", action="store_true", help="write into an existing, empty volume"
    )
    volume.add_argument(
        "--replace-existing",
        metavar="NAME",
        help="write into the existing volume NAME (the same as --into) even if it holds"
        " files: the backup's replace those at the same paths, nothing else is removed",
    )
    volume.add_argument(
        "--path",
        action="append",
        default=[],
        help="restore only this path of the backup, volumes/<name>/... (repeatable)",
    )
    volume.set_defaults(handler=lambda args: _restore_volume(start("cli"), args))
    verify = commands.add_parser("verify", help="re-read a stored backup and check its hash")
    verify.add_argument("backup", type=int, help="backup id (see `mackuper backups`)")
    verify.add_argument("--deep", action="store_true", help="also open and read every entry")
    verify.set_defaults(handler=lambda args: _verify(start("cli"), args))
    importing = commands.add_parser("import", help="rebuild the catalog from a destination")
    importing.add_argument("destination", type=int, help="destination id")
    importing.set_defaults(handler=lambda args: _import(start("cli"), args))


def _list(runtime: Runtime, args: argparse.Namespace) -> int:
    with runtime.sessions() as session:
        query = select(Artifact).where(Artifact.state == ArtifactState.STORED.value)
        if args.job is not None:
            query = query.where(Artifact.job_id == args.job)
        for artifact in session.scalars(query.order_by(Artifact.created_at)):
            verified = artifact.verify_status or "never verified"
            print(
                f"{artifact.id:>6}  {artifact.created_at:%Y-%m-%d %H:%M}  {artifact.run.job_name}"
                f"  {artifact.destination.name}:{artifact.key}  {artifact.size or 0} bytes"
                f"  ({verified})"
            )
    return 0


def _execute(runtime: Runtime, run_id: int) -> int:
    with runtime.sessions() as session:
        claim = lifecycle.claim(session, run_id, lifecycle.cli_worker_id())
    if claim is lifecycle.Claim.JOB_BUSY:
        # Not left queued: a worker would run it later, unasked, once the job is free.
        with runtime.sessions.begin() as session:
            session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == RunStatus.QUEUED.value)
                .values(status=RunStatus.CANCELLED.value, finished_at=datetime.now(UTC))
            )
        print("mackuper: another run of this job is running; try again when it has ended")
        return 1
    if claim is lifecycle.Claim.TAKEN:
        print("mackuper: a worker took this run first; follow it in the history")
        return 1
    outcome = lifecycle.execute_run(runtime, run_id, threading.Event())
    with runtime.sessions() as session:
        for line in session.scalars(
            select(RunLog).where(RunLog.run_id == run_id).order_by(RunLog.id)
        ):
            print(f"{line.level:>7}  {line.message}")
    print(f"run {run_id}: {outcome.status.value}")
    return 0 if outcome.status is RunStatus.SUCCESS else 1


def _restore(runtime: Runtime, args: argparse.Namespace) -> int:
    parsed = parse_restore(
        {
            "paths": args.path,
            "policy": args.policy,
            "dry_run": args.dry_run,
            "target": {"kind": "local", "path": args.to},
        }
    )
    if isinstance(parsed, dict):
        for message in parsed.values():
            print(f"mackuper: {message}")
        return 2
    with runtime.sessions() as session:
        artifact = session.get(Artifact, args.backup)
        if artifact is None or artifact.state != ArtifactState.STORED.value:
            print(f"mackuper: there is no stored backup {args.backup} (see `mackuper backups`)")
            return 2
        run_id = enqueue.queue_restore(
            session, runtime, artifact, parsed, RunTrigger.CLI, wake=False
        ).id
    return _execute(runtime, run_id)


def _restore_database(runtime: Runtime, args: argparse.Namespace) -> int:
    existing = args.replace_existing is not None
    if existing and args.replace_existing != args.into:
        print("mackuper: --replace-existing must name the --into database again, to confirm")
        return 2
    with runtime.sessions() as session:
        artifact = session.get(Artifact, args.backup)
        if artifact is None or artifact.state != ArtifactState.STORED.value:
            print(f"mackuper: there is no stored backup {args.backup} (see `mackuper backups`)")
            return 2
        details = {
            "database": args.database,
            "target": {"same_as_source": True, "database": args.into, "existing": existing},
        }
        problem = check_database_restore(runtime, session, artifact, details)
        if problem:
            print(f"mackuper: {problem}")
            return 2
        run_id = queue_database_restore(
            session, runtime, artifact, details, {}, RunTrigger.CLI, wake=False
        ).id
    return _execute(runtime, run_id)


def _restore_volume(runtime: Runtime, args: argparse.Namespace) -> int:
    replace = args.replace_existing is not None
    if replace and args.replace_existing != args.into:
        print("mackuper: --replace-existing must name the --into volume again, to confirm")
        return 2
    for name in (args.volume, args.into):
        if problem := check_volume_name(name):
            print(f"mackuper: {problem}")
            return 2
    with runtime.sessions() as session:
        artifact = session.get(Artifact, args.backup)
        if artifact is None or artifact.state != ArtifactState.STORED.value:
            print(f"mackuper: there is no stored backup {args.backup} (see `mackuper backups`)")
            return 2
        details = {
            "paths": list(args.path),
            "target": {
                "source": args.volume,
                "volume": args.into,
                "create": not (args.existing or replace),
                "replace": replace,
            },
        }
        refusal = check_volume_restore(runtime, session, artifact, details, {})
        if refusal is not None:
            print(f"mackuper: {refusal[1]}")
            return 2
        run_id = queue_volume_restore(
            session, runtime, artifact, details, {}, RunTrigger.CLI, wake=False
        ).id
    return _execute(runtime, run_id)


def _verify(runtime: Runtime, args: argparse.Namespace) -> int:
    with runtime.sessions() as session:
        artifact = session.get(Artifact, args.backup)
        if artifact is None or artifact.state != ArtifactState.STORED.value:
            print(f"mackuper: there is no stored backup {args.backup} (see `mackuper backups`)")
            return 2
        run_id = enqueue.queue_verify(session, artifact, args.deep, RunTrigger.CLI, wake=False).id
    return _execute(runtime, run_id)


def _import(runtime: Runtime, args: argparse.Namespace) -> int:
    with runtime.sessions() as session:
        row = session.get(Destination, args.destination)
        if row is None:
            print(f"mackuper: there is no destination {args.destination}")
            return 2
        report = import_backups(session, row, build_destination(runtime, row))
    print(
        f"found {report.manifests} manifest(s): imported {report.imported},"
        f" already known {report.already_known}"
        + (f", {report.chain_points} point(s) of incremental chains" if report.chain_points else "")
    )
    for problem in report.problems:
        print(f"problem: {problem}")
    for line in report.broken_chains:
        print(f"broken chain: {line}")
    return 0 if not report.problems else 1
