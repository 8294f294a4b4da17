"""Import existing backups: rebuild jobs, runs and artifacts from the manifests alone.

After the Mackuper database is lost, every archive still has its manifest beside
it (job slug and name, times, format, size, the archive's hash). Scanning a destination for
`*.manifest.json` brings those backups back into the catalog so they can be
browsed, verified and restored. Jobs that no longer exist come back disabled and
without a source, to be completed by hand.

Each manifest is judged on its own: a bad one is listed in the report with the
reason and the others are imported. A manifest is taken as a backup of job `slug`
only when everything about it agrees with what Mackuper itself writes (see
`belongs`): it lies in the job's own folder under the name `archive_key` gives for
its start time, its archive is there with the size the manifest declares, and its
times are not in the future. So a manifest planted with a future date, or in
another job's folder, or beside a different archive, is refused and can never
take a retention slot from a real backup (core/retention.py also never lets an
imported backup push out one this installation made itself).

A manifest of an incremental chain names every archive its point needs
(`chain.archives`, its own last). Once every manifest is imported, each such point
gets its chain_points row: the archive names resolved to the runs holding them at
this destination, so retention keeps what a kept point needs, verification checks
the whole chain and the next backup can build on it. A named archive the catalog
does not hold is recorded as run 0 (no run has that id), so the point counts as
broken until a full replaces it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mackuper.core.chain import sibling_key
from mackuper.core.filehash import named_hash
from mackuper.core.naming import (
    ARCHIVE_FORMATS,
    ENCRYPTED_SUFFIX,
    MANIFEST_SUFFIX,
    ArchiveName,
    normalize_prefix,
    parse_archive_name,
)
from mackuper.destinations.base import Destination, DestinationError, StoredObject
from mackuper.models import (
    LIVE_ARTIFACT_STATES,
    Artifact,
    ArtifactState,
    ChainPoint,
    Job,
    Run,
    RunKind,
    RunStatus,
    RunTrigger,
    hash_columns,
)
from mackuper.models import Destination as DestinationRow

MANIFEST_LIMIT = 128 * 1024 * 1024
"""Larger manifests are refused unread (Mackuper writes ~150 bytes per file)."""
CLOCK_SKEW = timedelta(minutes=10)
"""How far in the future a manifest's times may lie (clocks of two machines)."""
PROBLEM_LIMIT = 200
CHAIN_LIMIT = 10_000
"""The most archives a chain manifest may name (a chain is a full and its incrementals)."""
MISSING_RUN = 0
"""Stands in a chain point's `needs` for an archive the catalog does not hold."""


@dataclass
class ImportReport:
    manifests: int = 0
    imported: int = 0
    already_known: int = 0
    jobs_created: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    chain_points: int = 0
    broken_chains: list[str] = field(default_factory=list)
    """One line per imported point whose chain lacks an archive."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifests": self.manifests,
            "imported": self.imported,
            "already_known": self.already_known,
            "chain_points": self.chain_points,
            "broken_chains": self.broken_chains[:PROBLEM_LIMIT],
            "refused": len(self.problems),
            "jobs_created": self.jobs_created,
            "problems": self.problems[:PROBLEM_LIMIT],
        }


Slug = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=100)]


class _Job(BaseModel):
    model_config = ConfigDict(extra="ignore")
    slug: Slug
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None

    @field_validator("name")
    @classmethod
    def _storable(cls, name: str | None) -> str | None:
        if name is not None and ("\x00" in name or not name.isprintable()):
            raise ValueError("a job name holds printable characters only")
        if name is not None:
            name.encode()  # a lone surrogate raises UnicodeEncodeError, a ValueError
        return name


class _Archive(BaseModel):
    model_config = ConfigDict(extra="ignore")
    size: Annotated[StrictInt, Field(ge=0, le=1 << 62)]
    blake3: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """The stored bytes' hash in manifests written since 2026-12-02 (core/filehash.py)."""
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """The stored bytes' hash in manifests written before."""


ArchiveFileName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/\\]+$")]


class _Chain(BaseModel):
    """A manifest's `chain` (core/chain.py): the archives this point needs, its own last."""

    model_config = ConfigDict(extra="ignore")
    level: Annotated[StrictInt, Field(ge=0, lt=CHAIN_LIMIT)]
    full: ArchiveFileName
    previous: ArchiveFileName | None = None
    archives: Annotated[list[ArchiveFileName], Field(min_length=1, max_length=CHAIN_LIMIT)]


class ManifestHeader(BaseModel):
    """The part of a manifest import relies on; everything else is kept as stored."""

    model_config = ConfigDict(extra="ignore")
    mackuper_manifest: Annotated[StrictInt, Field(ge=1, le=1000)]
    job: _Job
    run_id: Annotated[StrictInt, Field(ge=0, le=1 << 62)] | None = None
    started_at: AwareDatetime
    finished_at: AwareDatetime
    format: Literal["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip"]
    archive: _Archive
    file_count: Annotated[StrictInt, Field(ge=0, le=1 << 40)] | None = None
    files: list[Any] | None = None
    chain: _Chain | None = None


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the manifest"
    return f"{where}: {first['msg']}"


def belongs(
    header: ManifestHeader, archive_key: str, prefix: str, archive_size: int, now: datetime
) -> str | None:
    """Why the manifest is not a backup of its job at `archive_key`; None when it is."""
    folder, _, name = archive_key.rpartition("/")
    parsed: ArchiveName | None = parse_archive_name(name)
    if parsed is None:
        return "its archive's name is not one Mackuper writes"
    started = header.started_at.astimezone(UTC)
    expected_folder = f"{normalize_prefix(prefix)}{header.job.slug}/{started:%Y}/{started:%m}"
    if folder != expected_folder:
        return f"it names job {header.job.slug!r} but lies outside {expected_folder}/"
    if parsed.started_second != started.replace(microsecond=0):
        return "its start time is not the one in its archive's name"
    if parsed.archive_format != header.format:
        return f"it says {header.format} but the archive's name says {parsed.archive_format}"
    if header.finished_at < header.started_at:
        return "it finished before it started"
    if header.finished_at > now + CLOCK_SKEW:
        return f"it is dated in the future ({header.finished_at.isoformat()})"
    if header.archive.size != archive_size:
        return f"it declares {header.archive.size} bytes but the archive has {archive_size}"
    return _chain_problem(header.chain, name)


def _chain_problem(chain: _Chain | None, name: str) -> str | None:
    """Why a manifest's chain cannot be this archive's; None when it can (or is absent)."""
    if chain is None:
        return None
    if chain.archives[-1] != name:
        return "its chain does not end with its own archive"
    if len(chain.archives) != chain.level + 1 or chain.archives[0] != chain.full:
        return "its chain's level and archives disagree"
    if chain.level and chain.previous != chain.archives[-2]:
        return "its chain's previous archive is not the one before it"
    parsed = [parse_archive_name(other) for other in chain.archives]
    if any(item is None for item in parsed):
        return "its chain names an archive Mackuper did not make"
    own = parsed[-1]
    if own is not None and any(
        item and item.started_second > own.started_second for item in parsed
    ):
        return "its chain names an archive made after it"
    return None


def _job_for(
    session: Session, row: DestinationRow, header: ManifestHeader, report: ImportReport
) -> Job:
    slug = header.job.slug
    job = session.scalar(select(Job).where(Job.slug == slug))
    if job is not None:
        if row not in job.destinations:
            job.destinations.append(row)
        return job
    name = header.job.name or slug
    if session.scalar(select(Job.id).where(Job.name == name)) is not None:
        name = f"{name[:88]} (imported)"
    job = Job(
        name=name,
        slug=slug,
        enabled=False,
        source_kind="local",
        source_config={"paths": [], "excludes": []},
        archive_format=header.format if header.format in ARCHIVE_FORMATS else "tar.gz",
        options={"imported": True},
        destinations=[row],
    )
    session.add(job)
    session.flush()
    report.jobs_created.append(name)
    return job


def import_backups(
    session: Session, row: DestinationRow, destination: Destination, now: datetime | None = None
) -> ImportReport:
    """Add every backup found at `destination` that the catalog lacks; commits.

    Never raises for what a manifest holds: each bad manifest becomes a line in
    the report's problems, and the good ones are imported.
    """
    now = now or datetime.now(UTC)
    report = ImportReport()
    try:
        stored = {item.key: item for item in destination.list(destination.prefix)}
    except DestinationError as error:
        report.problems.append(f"the destination cannot be listed: {error}")
        return report
    known = set(
        session.scalars(
            select(Artifact.key).where(
                Artifact.destination_id == row.id, Artifact.state.in_(LIVE_ARTIFACT_STATES)
            )
        )
    )
    accepted: list[tuple[ManifestHeader, StoredObject]] = []
    problems: list[tuple[str, str]] = []  # by manifest key, as the report lists them
    for key in sorted(stored):
        if not key.endswith(MANIFEST_SUFFIX):
            continue
        report.manifests += 1
        archive_key = key[: -len(MANIFEST_SUFFIX)]
        if archive_key in known:
            report.already_known += 1
            continue
        checked = _checked(destination, stored[key], stored.get(archive_key), now)
        if isinstance(checked, str):
            problems.append((key, checked))
        else:
            accepted.append((checked, stored[archive_key]))
    # Only now is the database written, in one short transaction: on SQLite that holds
    # the write lock, and reading manifests from storage inside it kept every worker's
    # progress waiting on the destination (for minutes on a slow link).
    chained: list[_Pending] = []
    for header, archive in accepted:
        problem = _import_one(session, row, header, archive, report, chained)
        if problem is not None:
            problems.append((f"{archive.key}{MANIFEST_SUFFIX}", problem))
    report.problems.extend(f"{key}: {problem}" for key, problem in sorted(problems))
    _link_chains(session, row, chained, report)
    session.commit()
    return report


@dataclass(frozen=True)
class _Pending:
    """An imported point of a chain, waiting for the runs of its archives to be known."""

    run_id: int
    job_id: int
    archive_key: str
    chain: _Chain


def _link_chains(
    session: Session, row: DestinationRow, chained: list[_Pending], report: ImportReport
) -> None:
    """Give each imported chain point its chain_points row, its archives resolved to the
    runs that hold them at this destination (MISSING_RUN for one the catalog lacks)."""
    for pending in chained:
        keys = [sibling_key(pending.archive_key, name) for name in pending.chain.archives]
        holders = dict(
            session.execute(
                select(Artifact.key, Artifact.run_id).where(
                    Artifact.destination_id == row.id,
                    Artifact.key.in_(keys),
                    Artifact.state.in_(LIVE_ARTIFACT_STATES),
                )
            ).all()
        )
        needs = [holders.get(key, MISSING_RUN) for key in keys[:-1]] + [pending.run_id]
        missing = [
            name for name, run_id in zip(pending.chain.archives, needs, strict=True) if not run_id
        ]
        if missing:
            report.broken_chains.append(
                f"{pending.chain.archives[-1]}: its chain lacks {', '.join(missing[:3])}"
                + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
                + "; it cannot be restored whole and the next backup starts a new full"
            )
        session.add(
            ChainPoint(
                run_id=pending.run_id,
                job_id=pending.job_id,
                level=pending.chain.level,
                full_run_id=needs[0],
                previous_run_id=needs[-2] if len(needs) > 1 else None,
                archive_name=pending.chain.archives[-1],
                needs=needs,
            )
        )
        report.chain_points += 1
    session.flush()


def _checked(
    destination: Destination, manifest: StoredObject, archive: StoredObject | None, now: datetime
) -> ManifestHeader | str:
    """The manifest's header when it is a backup to import, else the reason it is not.

    Touches no database. The header's file list is replaced by its length: the
    catalog needs the count only, and many manifests are held until they are written."""
    if archive is None:
        return "its archive is missing"
    if manifest.size > MANIFEST_LIMIT:
        return f"refused unread: {manifest.size} bytes, more than a manifest ever needs"
    try:
        document = json.loads(destination.get_bytes(manifest.key))
    except DestinationError as error:
        return f"unreadable ({error})"
    except (ValueError, RecursionError):
        return "not valid JSON"
    if not isinstance(document, dict) or "mackuper_manifest" not in document:
        return "not a Mackuper manifest"
    try:
        header = ManifestHeader.model_validate(document)
    except ValidationError as error:
        return f"not a valid Mackuper manifest ({_explain(error)})"
    problem = belongs(header, archive.key, destination.prefix, archive.size, now)
    if problem is not None:
        return f"not imported: {problem}"
    if header.files is not None:
        header = header.model_copy(update={"files": None, "file_count": len(header.files)})
    return header


def _import_one(
    session: Session,
    row: DestinationRow,
    header: ManifestHeader,
    archive: StoredObject,
    report: ImportReport,
    chained: list[_Pending],
) -> str | None:
    """Add one checked manifest's backup; the reason it was refused, or None.

    A point of a chain is added to `chained`, to be linked once all are imported."""
    try:
        with session.begin_nested():
            run = _add_backup(session, row, header, archive, report)
    except IntegrityError:
        return "not imported: the catalog already holds this archive or this job's name"
    report.imported += 1
    if header.chain is not None and run.job_id is not None:
        chained.append(_Pending(run.id, run.job_id, archive.key, header.chain))
    return None


def _add_backup(
    session: Session,
    row: DestinationRow,
    header: ManifestHeader,
    archive: StoredObject,
    report: ImportReport,
) -> Run:
    job = _job_for(session, row, header, report)
    files = header.file_count or 0  # _checked folded `files` into its count
    name = archive.key.rsplit("/", 1)[-1]
    # One hash, as the run that stored it kept (a manifest naming both: its BLAKE3, the
    # one a verification compares; core/filehash.py's named_hash).
    said = named_hash(header.archive.model_dump())
    hashed = hash_columns(said) if said is not None else {}
    run = Run(
        job_id=job.id,
        job_name=job.name,
        kind=RunKind.BACKUP,
        trigger=RunTrigger.IMPORT,
        status=RunStatus.SUCCESS,
        created_at=header.started_at,
        started_at=header.started_at,
        finished_at=header.finished_at,
        archive_name=name,
        bytes_written=archive.size,
        files_done=files,
        **hashed,
        details={"imported": True, "original_run_id": header.run_id},
    )
    session.add(run)
    session.flush()
    session.add(
        Artifact(
            run_id=run.id,
            job_id=job.id,
            destination_id=row.id,
            key=archive.key,
            state=ArtifactState.STORED.value,
            size=archive.size,
            **hashed,
            encrypted=name.endswith(ENCRYPTED_SUFFIX),
            created_at=header.started_at,
        )
    )
    session.flush()
    return run
