"""The restore kind (and its dry run): extract a stored archive into a local or SSH target.

`Run.details` holds the parameters (never a secret: SSH credentials and
decryption keys given for one restore are kept encrypted with the master key)
and, at the end, the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mackuper.models import Artifact, ArtifactState, Job, Run, RunKind, RunStatus
from mackuper.pipeline.age import SCRYPT_MAX_WORK_FACTOR
from mackuper.restore.archives import ByteCount, StoredArchive, open_members
from mackuper.restore.chain import Part, is_chain_point, open_parts, plan_parts, point_manifest
from mackuper.restore.errors import Refused, RestoreError
from mackuper.restore.extract import ExtractOptions, Extractor, Policy
from mackuper.restore.manifest import manifest_files, read_manifest, unsealed
from mackuper.restore.paths import is_selected, member_parts, normalize_selection
from mackuper.restore.seekable import open_selected
from mackuper.restore.ssh import SshSettings, open_restore_sftp
from mackuper.restore.stored import stored_archive
from mackuper.restore.targets import LocalTarget, SftpTarget, Target
from mackuper.runs.database_restore import (
    DatabaseRestoreTask,
    DatabaseRestoreWork,
    is_database_restore,
)
from mackuper.runs.outcome import Outcome
from mackuper.runs.task import Finished, RunContext
from mackuper.runs.volume_restore import (
    VolumeRestoreTask,
    VolumeRestoreWork,
    is_volume_restore,
)
from mackuper.runtime import Runtime


@dataclass
class RestoreWork:
    archive: StoredArchive
    job: Job | None
    target: dict[str, Any]
    secrets: dict[str, str]
    options: ExtractOptions
    manifest: dict[str, Any] | None = None
    """With its file list opened; None when it cannot be read."""
    parts: list[Part] | None = None
    """For a point of an incremental chain: the archives to read, and what from each."""


class RestoreTask:
    kind = RunKind.RESTORE
    title = "Restore"
    abandoned = "nothing was restored"
    pings = False

    def prepare(
        self, context: RunContext, session: Session, run: Run, job: Job | None
    ) -> RestoreWork | DatabaseRestoreWork | VolumeRestoreWork:
        """The archive and the options; RestoreError when the backup is no longer stored."""
        details = dict(run.details)
        if is_database_restore(details):
            return DatabaseRestoreTask().prepare(context, session, run, job)
        if is_volume_restore(details):
            return VolumeRestoreTask().prepare(context, session, run, job)
        artifact = session.get(Artifact, details.get("artifact_id"))
        if artifact is None:
            raise RestoreError("the backup to restore is no longer in the catalog")
        secrets = context.runtime.secrets.decrypt(details.get("secrets_encrypted"))
        options = ExtractOptions(
            policy=Policy(details["policy"]),
            dry_run=bool(details["dry_run"]),
            selection=normalize_selection(list(details["paths"])),
        )
        archive = stored_archive(context.runtime, session, artifact, secrets)
        manifest = point_manifest(archive, _manifest(archive), SCRYPT_MAX_WORK_FACTOR)
        options.declared_sizes = declared_sizes(manifest)
        parts = None
        if is_chain_point(manifest):
            chosen = _selected(options.selection) if options.selection else _everything
            parts = plan_parts(archive, manifest or {}, chosen)
            _check_stored(session, artifact, parts)
        return RestoreWork(archive, job, details["target"], secrets, options, manifest, parts)

    def execute(
        self, context: RunContext, work: RestoreWork | DatabaseRestoreWork | VolumeRestoreWork
    ) -> Finished:
        if isinstance(work, DatabaseRestoreWork):
            return DatabaseRestoreTask().execute(context, work)
        if isinstance(work, VolumeRestoreWork):
            return VolumeRestoreTask().execute(context, work)
        recorder, options, archive = context.recorder, work.options, work.archive
        target = _build_target(context.runtime, work.job, work.target, work.secrets)
        what = f"{len(options.selection)} selected path(s)" if options.selection else "everything"
        recorder.log(
            "info",
            f"{'dry run: checking' if options.dry_run else 'restoring'} {what} from"
            f" {archive.key} to {target.describe()} (existing files: {options.policy.value})",
        )
        counter = ByteCount()
        try:
            extractor = Extractor(target, options, recorder, counter.value)
            # A selection reads only the frames holding it when the archive has an index.
            chosen = _selected(options.selection) if options.selection else None
            parts = work.parts
            if parts is not None:
                recorder.log(
                    "info",
                    f"a point of an incremental chain: reading {len(parts)} of its archives ("
                    + ", ".join(part.archive.key.rsplit("/", 1)[-1] for part in parts)
                    + ")",
                )
            opened = (
                open_parts(parts, counter)
                if parts is not None
                else open_selected(archive, work.manifest, chosen, counter)
                if chosen is not None
                else open_members(archive, counter)
            )
            with opened as members:
                report = extractor.run(members)
            if extractor.needs_second_pass:
                recorder.log(
                    "info",
                    "reading the archive once more for the first names of selected hard links",
                )
                again = open_parts(parts, counter) if parts else open_members(archive, counter)
                with again as members:
                    report = extractor.finish_hard_links(members)
        finally:
            target.close()
        results = report.as_dict()
        if options.dry_run:
            results["sample"] = report.sample
        recorder.log(
            "info",
            f"{'would restore' if options.dry_run else 'restored'} {report.files} file(s),"
            f" {report.links} link(s), {report.directories} new folder(s), {report.bytes} bytes;"
            f" kept {report.skipped} existing, renamed {report.renamed},"
            f" refused {report.refused}, failed {report.failed}",
        )
        values: dict[str, object] = {
            "bytes_read": counter.count,
            "bytes_written": report.bytes,
            "files_done": report.files + report.links,
        }
        outcome = Outcome(RunStatus.SUCCESS, None)
        if report.refused or report.failed:
            message = f"{report.refused} entr(ies) refused and {report.failed} failed; see the log"
            outcome = Outcome(RunStatus.WARNING, message)
        return Finished(outcome, values, results)

    def after(self, context: RunContext, outcome: Outcome) -> None:
        return None


def _manifest(archive: StoredArchive) -> dict[str, Any] | None:
    try:
        return unsealed(
            read_manifest(archive.destination, archive.key), archive.keys, SCRYPT_MAX_WORK_FACTOR
        )
    except RestoreError:
        return None


def _everything(_path: str) -> bool:
    return True


def _check_stored(session: Session, artifact: Artifact, parts: list[Part]) -> None:
    """Raise RestoreError when an archive the point needs is not stored beside it."""
    keys = [part.archive.key for part in parts]
    stored = set(
        session.scalars(
            select(Artifact.key).where(
                Artifact.destination_id == artifact.destination_id,
                Artifact.key.in_(keys),
                Artifact.state == ArtifactState.STORED.value,
            )
        ).all()
    )
    for key in keys:
        if key not in stored:
            raise RestoreError(
                f"{key.rsplit('/', 1)[-1]}, an archive of this point's incremental chain, is"
                f" no longer stored at {artifact.destination.name}: this point cannot be restored"
            )


def _selected(selection: list[tuple[str, ...]]) -> Callable[[str], bool]:
    def selected(name: str) -> bool:
        try:
            return is_selected(member_parts(name), selection)
        except Refused:
            return False

    return selected


def declared_sizes(manifest: dict[str, Any] | None) -> dict[str, int] | None:
    """Each file's size as the manifest declares it; None when it lists no files
    (sealed without the key, or missing): then only the archive's own headers hold."""
    if manifest is None or "files" not in manifest:
        return None
    return {
        item["path"]: item["size"]
        for item in manifest_files(manifest)
        if item.get("type") == "file" and isinstance(item.get("size"), int)
    }


def _build_target(
    runtime: Runtime, job: Job | None, target: dict[str, Any], secrets: dict[str, str]
) -> Target:
    if target.get("kind") != "ssh":
        return LocalTarget(str(target["path"]))
    if target.get("same_as_source"):
        if job is None or job.source_kind != "ssh":
            raise RestoreError("the job of this backup no longer backs up an SSH host")
        settings = SshSettings.from_source(
            job.source_config, runtime.secrets.decrypt(job.source_secrets_encrypted)
        )
    else:
        settings = SshSettings(
            host=str(target["host"]),
            port=int(target["port"]),
            username=str(target["username"]),
            host_key_fingerprint=str(target.get("host_key_fingerprint") or ""),
            host_key=str(target.get("host_key") or ""),
            password=secrets.get("password", ""),
            private_key=secrets.get("private_key", ""),
            passphrase=secrets.get("passphrase", ""),
        )
    transport, sftp = open_restore_sftp(settings)
    return SftpTarget(transport, sftp, str(target["path"]), settings.label())
