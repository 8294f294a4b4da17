"""The verify kind: re-read a stored archive and compare it with its manifest's hash
(and, deep, every entry's), then note the result on the artifact.

At an Object Lock destination it also checks that the archive and its manifest are
still locked at least as long as the job's policy promised when they were made, in
at least the destination's mode; drift (a lock shortened, weakened or gone) ends the
verification `warning`, naming what changed.

A point of an incremental chain needs the archives before it (its manifest's
`chain.archives`): each is checked the same way at the same destination, and one that
is gone, no longer in the catalog, or changed fails the verification as "chain broken",
naming the archive; so does a point listing only its changes whose whole file list
cannot be folded from the chain's manifests (one gone or not of this chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mackuper.core.chain import chain_of, lists_changes, own_members, sibling_key
from mackuper.core.filehash import TITLES, named_hash
from mackuper.core.naming import manifest_key
from mackuper.destinations.base import DestinationError, Lockable
from mackuper.models import (
    Artifact,
    ArtifactState,
    ChainPoint,
    Job,
    Run,
    RunKind,
    RunStatus,
    hash_columns,
)
from mackuper.pipeline.age import SCRYPT_MAX_WORK_FACTOR
from mackuper.restore.archives import StoredArchive
from mackuper.restore.chain import point_manifest
from mackuper.restore.errors import RestoreError
from mackuper.restore.manifest import manifest_files, read_manifest, unsealed
from mackuper.restore.stored import stored_archive
from mackuper.restore.verify import VerifyResult, verify_archive
from mackuper.runs import retention
from mackuper.runs.outcome import Outcome
from mackuper.runs.recorder import RunRecorder
from mackuper.runs.task import Finished, RunContext


@dataclass
class VerifyWork:
    archive: StoredArchive
    artifact_id: int
    known_hash: tuple[str, str] | None
    """The catalog's (algorithm, digest) of the stored bytes."""
    known_size: int | None
    deep: bool
    lock_until: datetime | None = None
    """The retain-until date the policy promised this backup; None where nothing is locked."""
    destination_id: int | None = None
    destination_name: str = ""
    recorded_chain: tuple[str | None, ...] = ()
    """The archives before this point in its chain as the catalog records them (None: one
    it never held); used when the manifest cannot be read."""


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
            artifact.archive_hash,
            artifact.size,
            bool(details.get("deep")),
            lock_until,
            artifact.destination_id,
            artifact.destination.name,
            _recorded_chain(session, artifact.run_id),
        )

    def execute(self, context: RunContext, work: VerifyWork) -> Finished:
        recorder, archive, deep = context.recorder, work.archive, work.deep
        stored, result = _checked(
            context,
            archive,
            work.artifact_id,
            work.known_hash,
            work.known_size,
            deep,
            f"verifying {archive.key}{' and every entry in it' if deep else ''}",
        )
        summary = (
            f"the archive matches its manifest ({result.algorithm} {result.digest},"
            f" {result.size} bytes"
        )
        if deep:
            summary += f", {result.entries} entries opened, {result.files_checked} files read"
        recorder.log("info", summary + ")")
        values: dict[str, object] = {
            "bytes_read": result.size,
            "files_done": result.files_checked,
            **hash_columns((result.algorithm, result.digest)),
        }
        broken = _check_chain(context, work, stored)
        for problem in broken:
            recorder.log("error", problem)
        drift = lock_drift(archive, work.lock_until, context.clock())
        for problem in drift:
            recorder.log("warning", problem)
        if broken:
            outcome = Outcome(RunStatus.FAILED, "; ".join(broken + drift))
            return Finished(outcome, values, result.as_dict())
        if drift:
            outcome = Outcome(RunStatus.WARNING, "; ".join(drift))
            return Finished(outcome, values, result.as_dict())
        if work.lock_until is not None and work.lock_until > context.clock():
            recorder.log("info", f"locked as promised, until at least {_day(work.lock_until)}")
        return Finished(Outcome(RunStatus.SUCCESS, None), values, result.as_dict())

    def after(self, context: RunContext, outcome: Outcome) -> None:
        return None


def _expectations(
    archive: StoredArchive, known_hash: tuple[str, str] | None, recorder: RunRecorder
) -> tuple[dict[str, Any], tuple[str, str], dict[str, tuple[str, str]]]:
    """The manifest as stored (its public part), the archive's hash to compare with
    (algorithm, hex), and the hash of each file stored in this archive itself: path ->
    (algorithm, hex).

    An unreadable manifest is logged and the catalog's hash used instead; RestoreError
    when neither has one, or they disagree (an archive replaced together with its
    manifest's hash is not one the run stored).
    """
    stored: dict[str, Any] = {}
    said: tuple[str, str] | None = None
    file_hashes: dict[str, tuple[str, str]] = {}
    try:
        stored = read_manifest(archive.destination, archive.key)
        manifest = unsealed(stored, archive.keys, SCRYPT_MAX_WORK_FACTOR)
        section = manifest.get("archive")
        file_hashes = {
            str(item["path"]).strip("/"): hashed
            for item in own_members(manifest_files(manifest))
            if (hashed := named_hash(item)) is not None
        }
        said = named_hash(section) if isinstance(section, dict) else None
    except RestoreError as error:
        if known_hash is None:
            raise
        recorder.log("warning", f"{error}; checking against the catalog instead")
    if said is not None and known_hash is not None and said != known_hash:
        raise RestoreError(
            "the catalog and the manifest disagree about this archive's hash"
            f" ({TITLES[known_hash[0]]} {known_hash[1]} against"
            f" {TITLES[said[0]]} {said[1]})"
        )
    expected = said or known_hash
    if expected is None:
        raise RestoreError("there is no hash to compare this archive with")
    return stored, expected, file_hashes


def _checked(
    context: RunContext,
    archive: StoredArchive,
    artifact_id: int,
    known_hash: tuple[str, str] | None,
    size: int | None,
    deep: bool,
    saying: str,
) -> tuple[dict[str, Any], VerifyResult]:
    """The stored manifest and verify_archive's result (`saying` is logged before the
    archive is read), noting `ok` or `failed` on the artifact whatever happens: a
    manifest that disagrees with the catalog fails it as a changed archive would."""
    status = "failed"
    try:
        stored, expected, file_hashes = _expectations(archive, known_hash, context.recorder)
        context.recorder.log("info", saying)
        result = verify_archive(archive, expected, size, deep, file_hashes, context.recorder)
        status = "ok"
    finally:
        with context.runtime.sessions.begin() as session:
            session.execute(
                update(Artifact)
                .where(Artifact.id == artifact_id)
                .values(verified_at=datetime.now(UTC), verify_status=status)
            )
    return stored, result


def _recorded_chain(session: Session, run_id: int) -> tuple[str | None, ...]:
    """The names of the archives before this run's point, from chain_points (none for a
    full or a full-only job)."""
    point = session.get(ChainPoint, run_id)
    if point is None:
        return ()
    earlier = [other for other in point.needs if other != run_id]
    names = dict(
        session.execute(
            select(ChainPoint.run_id, ChainPoint.archive_name).where(ChainPoint.run_id.in_(earlier))
        ).all()
    )
    return tuple(names.get(other) for other in earlier)


def _check_chain(context: RunContext, work: VerifyWork, stored: dict[str, Any]) -> list[str]:
    """Check every earlier archive of the point's chain; what is wrong ("chain broken: ...")."""
    chain = chain_of(stored)
    own = work.archive.key.rsplit("/", 1)[-1]
    earlier: list[str | None] = [name for name in chain["archives"] if name != own] if chain else []
    if chain is None:
        earlier = list(work.recorded_chain)
    if not earlier:
        return []
    recorder, where = context.recorder, work.destination_name or "its destination"
    recorder.log("info", f"this point builds on {len(earlier)} earlier archive(s); checking each")
    problems: list[str] = []
    for name in earlier:
        if name is None:
            problems.append(
                "chain broken: an archive this point builds on was never in the catalog"
            )
            continue
        try:
            key = sibling_key(work.archive.key, name)
        except ValueError:
            problems.append(f"chain broken: the manifest names {name!r}, not an archive")
            continue
        with context.runtime.sessions() as session:
            artifact = session.scalar(
                select(Artifact).where(
                    Artifact.key == key,
                    Artifact.destination_id == work.destination_id,
                    Artifact.state == ArtifactState.STORED.value,
                )
            )
            known = (artifact.id, artifact.archive_hash, artifact.size) if artifact else None
        if known is None:
            problems.append(
                f"chain broken: {name}, which this point builds on, is no longer stored at"
                f" {where} (not in the catalog)"
            )
            continue
        link = StoredArchive(work.archive.destination, key, work.archive.keys)
        try:
            saying = f"verifying {key}, which this point builds on"
            _checked(context, link, known[0], known[1], known[2], work.deep, saying)
        except (RestoreError, DestinationError) as error:
            problems.append(f"chain broken: {name}, which this point builds on: {error}")
    if not problems and lists_changes(stored):
        problems.extend(_check_listing(work.archive, stored))
    if not problems:
        recorder.log("info", f"all {len(earlier)} earlier archive(s) of the chain match")
    return problems


def _check_listing(archive: StoredArchive, stored: dict[str, Any]) -> list[str]:
    """For a point whose manifest lists its changes only: whether its whole file list
    can be folded from the chain's manifests (what a restore through Mackuper needs).
    Without the key to open them nothing is read, and nothing is said."""
    try:
        point_manifest(archive, unsealed(stored, archive.keys, SCRYPT_MAX_WORK_FACTOR))
    except RestoreError as error:
        return [f"chain broken: {error}"]
    return []


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
