"""The verify kind: re-read a stored archive and compare it with its manifest's SHA-256
(and, deep, every entry's), then note the result on the artifact.

At an Object Lock destination it also checks that the archive and its manifest are
still locked at least as long as the job's policy promised when they were made, in
at least the destination's mode; drift (a lock shortened, weakened or gone) ends the
verification `warning`, naming what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from mackuper.core.naming import manifest_key
from mackuper.destinations.base import DestinationError, Lockable
from mackuper.models import Artifact, Job, Run, RunKind, RunStatus
from mackuper.pipeline.age import SCRYPT_MAX_WORK_FACTOR
from mackuper.restore.archives import StoredArchive
from mackuper.restore.errors import RestoreError
from mackuper.restore.manifest import manifest_files, read_manifest, unsealed
from mackuper.restore.stored import stored_archive
from mackuper.restore.verify import verify_archive
from mackuper.runs import retention
from mackuper.runs.outcome import Outcome
from mackuper.runs.task import Finished, RunContext


@dataclass
class VerifyWork:
    archive: StoredArchive
    artifact_id: int
    known_sha256: str | None
    known_size: int | None
    deep: bool
    lock_until: datetime | None = None
    """The retain-until date the policy promised this backup; None where nothing is locked."""


LOCK_SLACK = timedelta(seconds=1)
"""S3 keeps retain-until dates to the second."""


class VerifyTask:
    kind = RunKind.VERIFY
    title = "Verification"
    abandoned = "nothing was verified"
    pings = False

    def prepare(
        self, context: RunContext, session: Session, run: Run, job: Job | None
    ) -> VerifyWork:
        """The archive to read; RestoreError when the backup is no longer stored."""
        details = dict(run.details)
        artifact = session.get(Artifact, details.get("artifact_id"))
        if artifact is None:
            raise RestoreError("the backup to verify is no longer in the catalog")
        archive = stored_archive(context.runtime, session, artifact, {})
        lock_until = None
        destination = archive.destination
        if isinstance(destination, Lockable) and destination.lock_mode and job is not None:
            made = artifact.run.started_at or artifact.created_at
            lock_until = retention.first_lock(
                session, job, artifact.destination, artifact.run_id, made
            )
        return VerifyWork(
            archive,
            artifact.id,
            artifact.sha256,
            artifact.size,
            bool(details.get("deep")),
            lock_until,
        )

    def execute(self, context: RunContext, work: VerifyWork) -> Finished:
        recorder, archive, deep = context.recorder, work.archive, work.deep
        file_hashes: dict[str, str] = {}
        expected = work.known_sha256
        try:
            manifest = unsealed(
                read_manifest(archive.destination, archive.key),
                archive.keys,
                SCRYPT_MAX_WORK_FACTOR,
            )
            section = manifest.get("archive")
            if isinstance(section, dict) and section.get("sha256"):
                expected = str(section["sha256"])
                if work.known_sha256 and work.known_sha256 != expected:
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
            result = verify_archive(archive, expected, work.known_size, deep, file_hashes, recorder)
            status = "ok"
        finally:
            with context.runtime.sessions.begin() as session:
                session.execute(
                    update(Artifact)
                    .where(Artifact.id == work.artifact_id)
                    .values(verified_at=datetime.now(UTC), verify_status=status)
                )
        summary = f"the archive matches its manifest (sha256 {result.sha256}, {result.size} bytes"
        if deep:
            summary += f", {result.entries} entries opened, {result.files_checked} files read"
        recorder.log("info", summary + ")")
        values: dict[str, object] = {
            "bytes_read": result.size,
            "files_done": result.files_checked,
            "sha256": result.sha256,
        }
        drift = lock_drift(archive, work.lock_until, context.clock())
        for problem in drift:
            recorder.log("warning", problem)
        if drift:
            outcome = Outcome(RunStatus.WARNING, "; ".join(drift))
            return Finished(outcome, values, result.as_dict())
        if work.lock_until is not None and work.lock_until > context.clock():
            recorder.log("info", f"locked as promised, until at least {_day(work.lock_until)}")
        return Finished(Outcome(RunStatus.SUCCESS, None), values, result.as_dict())

    def after(self, context: RunContext, outcome: Outcome) -> None:
        return None


def _day(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def lock_drift(archive: StoredArchive, promised: datetime | None, now: datetime) -> list[str]:
    """What differs from the lock the policy promised the archive and its manifest.

    Nothing is expected once the promised date has passed (retention may delete then).
    """
    destination = archive.destination
    if promised is None or promised <= now or not isinstance(destination, Lockable):
        return []
    found: list[str] = []
    for key in (archive.key, manifest_key(archive.key)):
        name = key.rsplit("/", 1)[-1]
        try:
            lock = destination.lock_of(key)
        except DestinationError as error:
            found.append(f"could not read the lock of {name}: {error}")
            continue
        if lock is None:
            found.append(f"{name} is not locked; it should be until {_day(promised)}")
        elif lock.until + LOCK_SLACK < promised:
            found.append(
                f"{name} is locked only until {_day(lock.until)}; it should be until"
                f" {_day(promised)}"
            )
        elif destination.lock_mode == "COMPLIANCE" and lock.mode != "COMPLIANCE":
            found.append(f"{name} is locked in {lock.mode.lower()} mode, not compliance")
    return found
