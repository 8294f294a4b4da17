"""Restores and verifications as runs: queued like backups, executed by the worker.

`Run.details` holds the parameters (never a secret: SSH credentials and
decryption keys given for one restore are kept encrypted with the master key)
and, at the end, the results. Progress, log, cancel and history come from the
same RunRecorder as backups.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from mackuper.destinations import registry as destinations
from mackuper.destinations.base import Destination
from mackuper.encryption import restore_keys
from mackuper.models import Artifact, ArtifactState, Job, Run, RunStatus
from mackuper.models import Destination as DestinationRow
from mackuper.pipeline.age import KeyFormatError
from mackuper.restore.archives import DecryptionKeys, StoredArchive, open_members
from mackuper.restore.errors import RestoreError
from mackuper.restore.extract import ExtractOptions, Extractor, Policy
from mackuper.restore.manifest import manifest_files, read_manifest, unsealed
from mackuper.restore.paths import normalize_selection
from mackuper.restore.ssh import SshSettings, open_restore_sftp
from mackuper.restore.targets import LocalTarget, SftpTarget, Target
from mackuper.restore.verify import verify_archive
from mackuper.runs.alerts import RunEdges
from mackuper.runs.outcome import Outcome, from_exception, is_unexpected
from mackuper.runs.recorder import RunRecorder
from mackuper.runtime import Runtime

logger = logging.getLogger(__name__)

RESTORE = "restore"
VERIFY = "verify"
KINDS = {RESTORE, VERIFY}
SSH_SECRET_FIELDS = ("password", "private_key", "passphrase")
KEY_FIELDS = ("identity", "passphrase")


@dataclass
class RestoreRequest:
    """A validated restore form: parameters to store as they are, and secrets to encrypt."""

    details: dict[str, Any]
    secrets: dict[str, str]


def parse_restore(payload: dict[str, Any]) -> RestoreRequest | dict[str, str]:
    """The restore parameters from a form or the CLI, or field errors."""
    errors: dict[str, str] = {}
    policy = str(payload.get("policy") or Policy.SKIP.value)
    if policy not in {item.value for item in Policy}:
        errors["policy"] = "Choose skip, overwrite or keep-both."
    raw_paths = payload.get("paths") or []
    paths: list[str] = []
    if not isinstance(raw_paths, list) or not all(isinstance(p, str) for p in raw_paths):
        errors["paths"] = "Send the selected paths as a list of strings."
    else:
        paths = [p for p in raw_paths if p.strip("/")]
        try:
            normalize_selection(paths)
        except ValueError as error:
            errors["paths"] = f"A selected path is not valid: {error}."
    raw_target = payload.get("target")
    target: dict[str, Any] = raw_target if isinstance(raw_target, dict) else {}
    kind = str(target.get("kind") or "local")
    path = str(target.get("path") or "").strip()
    secrets: dict[str, str] = {}
    stored_target: dict[str, Any] = {"kind": kind, "path": path}
    if not path.startswith("/"):
        errors["target.path"] = "Give the absolute path of the directory to restore into."
    if kind == "ssh" and target.get("same_as_source"):
        stored_target["same_as_source"] = True
    elif kind == "ssh":
        port = target.get("port") or 22
        stored_target.update(
            host=str(target.get("host") or "").strip(),
            port=port if isinstance(port, int) else 0,
            username=str(target.get("username") or "").strip(),
            host_key_fingerprint=str(target.get("host_key_fingerprint") or "").strip(),
            host_key=str(target.get("host_key") or "").strip(),
        )
        if not stored_target["host"]:
            errors["target.host"] = "Enter the SSH host."
        if not 0 < stored_target["port"] < 65536:
            errors["target.port"] = "The port is a number from 1 to 65535."
        if not stored_target["username"]:
            errors["target.username"] = "Enter the SSH user name."
        fingerprint = str(stored_target["host_key_fingerprint"])
        if not (stored_target["host_key"] or fingerprint.startswith("SHA256:")):
            errors["target.host_key_fingerprint"] = (
                "Pin the host key: paste its SHA256 fingerprint (ssh-keygen -lf)."
            )
        secrets.update({name: str(target[name]) for name in SSH_SECRET_FIELDS if target.get(name)})
        if not (secrets.get("password") or secrets.get("private_key")):
            errors["target.password"] = "Give a password or a private key for the SSH host."
    elif kind != "local":
        errors["target.kind"] = "Restore to a local directory or to an SSH host."
    raw_keys = payload.get("decryption")
    keys: dict[str, Any] = raw_keys if isinstance(raw_keys, dict) else {}
    secrets.update({f"key_{name}": str(keys[name]) for name in KEY_FIELDS if keys.get(name)})
    if errors:
        return errors
    details = {
        "paths": paths,
        "policy": policy,
        "dry_run": bool(payload.get("dry_run", False)),
        "target": stored_target,
    }
    return RestoreRequest(details, secrets)


def queue_restore(
    session: Session, runtime: Runtime, artifact: Artifact, request: RestoreRequest, trigger: str
) -> Run:
    details = {**request.details, "artifact_id": artifact.id, "archive_key": artifact.key}
    if request.secrets:
        details["secrets_encrypted"] = runtime.secrets.encrypt(request.secrets)
    return _queue(session, artifact, RESTORE, details, trigger)


def queue_verify(session: Session, artifact: Artifact, deep: bool, trigger: str) -> Run:
    details = {"artifact_id": artifact.id, "archive_key": artifact.key, "deep": deep}
    return _queue(session, artifact, VERIFY, details, trigger)


def _queue(
    session: Session, artifact: Artifact, kind: str, details: dict[str, Any], trigger: str
) -> Run:
    job = session.get(Job, artifact.job_id) if artifact.job_id is not None else None
    name = artifact.run.job_name if job is None else job.name
    run = Run(
        job_id=artifact.job_id,
        job_name=name,
        kind=kind,
        trigger=trigger,
        archive_name=artifact.key.rsplit("/", 1)[-1],
        details=details,
    )
    session.add(run)
    session.commit()
    return run


def build_destination(runtime: Runtime, row: DestinationRow) -> Destination:
    return destinations.build(row.kind, row.config, runtime.secrets.decrypt(row.secrets_encrypted))


def decryption_keys(runtime: Runtime, job: Job | None, given: dict[str, str]) -> DecryptionKeys:
    """A key or passphrase given for this restore first, then what the job stores."""
    stored = runtime.secrets.decrypt(job.encryption_secrets_encrypted) if job else {}
    pasted = given.get("key_identity") or given.get("key_passphrase")
    try:
        identities, passphrase = restore_keys(job.encryption if job else {}, stored, pasted)
    except KeyFormatError as error:
        raise RestoreError(f"the decryption key cannot be read ({error})") from None
    return DecryptionKeys(list(identities), passphrase)


def stored_archive(
    runtime: Runtime, session: Session, artifact: Artifact, given: dict[str, str]
) -> StoredArchive:
    if artifact.state != ArtifactState.STORED.value:
        raise RestoreError("this backup is no longer stored (it was deleted or never finished)")
    job = session.get(Job, artifact.job_id) if artifact.job_id is not None else None
    destination = build_destination(runtime, artifact.destination)
    return StoredArchive(destination, artifact.key, decryption_keys(runtime, job, given))


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


class _ByteCount:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, chunk: bytes) -> None:
        self.count += len(chunk)

    def value(self) -> int:
        return self.count


def _restore(
    runtime: Runtime, run_id: int, recorder: RunRecorder
) -> tuple[Outcome, dict[str, Any]]:
    with runtime.sessions() as session:
        run = session.get_one(Run, run_id)
        details = dict(run.details)
        artifact = session.get(Artifact, details.get("artifact_id"))
        if artifact is None:
            raise RestoreError("the backup to restore is no longer in the catalog")
        secrets = runtime.secrets.decrypt(details.get("secrets_encrypted"))
        archive = stored_archive(runtime, session, artifact, secrets)
        job = session.get(Job, artifact.job_id) if artifact.job_id is not None else None
    options = ExtractOptions(
        policy=Policy(details["policy"]),
        dry_run=bool(details["dry_run"]),
        selection=normalize_selection(list(details["paths"])),
    )
    target = _build_target(runtime, job, details["target"], secrets)
    what = f"{len(options.selection)} selected path(s)" if options.selection else "everything"
    recorder.log(
        "info",
        f"{'dry run: checking' if options.dry_run else 'restoring'} {what} from"
        f" {archive.key} to {target.describe()} (existing files: {options.policy.value})",
    )
    counter = _ByteCount()
    try:
        extractor = Extractor(target, options, recorder, counter.value)
        with open_members(archive, counter) as members:
            report = extractor.run(members)
    finally:
        target.close()
    results = report.as_dict()
    if options.dry_run:
        results["sample"] = report.sample
    recorder.log(
        "info",
        f"{'would restore' if options.dry_run else 'restored'} {report.files} file(s),"
        f" {report.links} link(s), {report.directories} new folder(s), {report.bytes} bytes;"
        f" kept {report.skipped} existing, renamed {report.renamed}, refused {report.refused},"
        f" failed {report.failed}",
    )
    values: dict[str, Any] = {
        "bytes_read": counter.count,
        "bytes_written": report.bytes,
        "files_done": report.files + report.links,
    }
    if report.refused or report.failed:
        message = f"{report.refused} entr(ies) refused and {report.failed} failed; see the log"
        return Outcome(RunStatus.WARNING, message), {"results": results, **values}
    return Outcome(RunStatus.SUCCESS, None), {"results": results, **values}


def _verify(runtime: Runtime, run_id: int, recorder: RunRecorder) -> tuple[Outcome, dict[str, Any]]:
    with runtime.sessions() as session:
        run = session.get_one(Run, run_id)
        details = dict(run.details)
        artifact = session.get(Artifact, details.get("artifact_id"))
        if artifact is None:
            raise RestoreError("the backup to verify is no longer in the catalog")
        archive = stored_archive(runtime, session, artifact, {})
        artifact_id, known_sha, known_size = artifact.id, artifact.sha256, artifact.size
    deep = bool(details.get("deep"))
    file_hashes: dict[str, str] = {}
    expected = known_sha
    try:
        manifest = unsealed(read_manifest(archive.destination, archive.key), archive.keys)
        section = manifest.get("archive")
        if isinstance(section, dict) and section.get("sha256"):
            expected = str(section["sha256"])
            if known_sha and known_sha != expected:
                raise RestoreError(
                    "the catalog and the manifest disagree about this archive's SHA-256"
                )
        file_hashes = {
            str(item["path"]).strip("/"): str(item["sha256"])
            for item in manifest_files(manifest)
            if item.get("sha256")
        }
    except RestoreError as error:
        if expected is None:
            raise
        recorder.log("warning", f"{error}; checking against the catalog instead")
    if not expected:
        raise RestoreError("there is no SHA-256 to compare this archive with")
    recorder.log("info", f"verifying {archive.key}{' and every entry in it' if deep else ''}")
    status = "failed"
    try:
        result = verify_archive(archive, expected, known_size, deep, file_hashes, recorder)
        status = "ok"
    finally:
        with runtime.sessions.begin() as session:
            session.execute(
                update(Artifact)
                .where(Artifact.id == artifact_id)
                .values(verified_at=datetime.now(UTC), verify_status=status)
            )
    summary = f"the archive matches its manifest (sha256 {result.sha256}, {result.size} bytes"
    if deep:
        summary += f", {result.entries} entries opened, {result.files_checked} files read"
    recorder.log("info", summary + ")")
    values = {
        "bytes_read": result.size,
        "files_done": result.files_checked,
        "sha256": result.sha256,
    }
    return Outcome(RunStatus.SUCCESS, None), {"results": result.as_dict(), **values}


def execute_other_run(
    runtime: Runtime, run_id: int, kind: str, stopping: threading.Event
) -> Outcome:
    """Run a claimed restore or verify to its end and store the outcome; never raises."""
    recorder = RunRecorder(runtime.sessions, run_id, stopping)
    values: dict[str, Any] = {}
    try:
        recorder.check_stop()
        if kind == RESTORE:
            outcome, values = _restore(runtime, run_id, recorder)
        else:
            outcome, values = _verify(runtime, run_id, recorder)
    except RestoreError as error:
        outcome = Outcome(RunStatus.FAILED, str(error))
    except Exception as error:  # noqa: BLE001 - every failure becomes a recorded status
        outcome = from_exception(error)
        if outcome.status is RunStatus.FAILED:
            logger.warning(
                "%s run %s failed: %s", kind, run_id, outcome.error, exc_info=is_unexpected(error)
            )
    level = "info" if outcome.status is RunStatus.SUCCESS else "error"
    suffix = f": {outcome.error}" if outcome.error else ""
    recorder.log(level, f"finished: {outcome.status.value}{suffix}")
    results = values.pop("results", None)
    with runtime.sessions.begin() as session:
        run = session.get_one(Run, run_id)
        details = dict(run.details)
        if results is not None:
            details["results"] = results
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status=outcome.status.value,
                error=outcome.error,
                finished_at=datetime.now(UTC),
                current_file=None,
                details=details,
                **values,
            )
        )
    if kind == VERIFY and outcome.status is RunStatus.FAILED:
        _alert(runtime, recorder, run_id)
    return outcome


def _alert(runtime: Runtime, recorder: RunRecorder, run_id: int) -> None:
    """A failed verification alerts like a failed backup (the job's alert settings)."""
    try:
        with runtime.sessions() as session:
            run = session.get_one(Run, run_id)
            job = session.get(Job, run.job_id) if run.job_id is not None else None
            edges = RunEdges.load(runtime, recorder, run, job)
            outcome = Outcome(RunStatus(run.status), run.error)
        edges.announce_end(outcome)
    except Exception:  # noqa: BLE001 - the result is recorded; an alert failure must not hide it
        logger.exception("run %s: the verification alert failed", run_id)
