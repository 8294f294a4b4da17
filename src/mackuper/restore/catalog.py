"""Import existing backups: rebuild jobs, runs and artifacts from the manifests alone.

After the Mackuper database is lost, every archive still has its manifest beside
it (job slug and name, times, format, size, SHA-256). Scanning a destination for
`*.manifest.json` brings those backups back into the catalog so they can be
browsed, verified and restored. Jobs that no longer exist come back disabled and
without a source, to be completed by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mackuper.core.naming import ARCHIVE_FORMATS, MANIFEST_SUFFIX, slugify
from mackuper.destinations.base import Destination, DestinationError
from mackuper.models import Artifact, ArtifactState, Job, Run, RunKind, RunStatus, RunTrigger
from mackuper.models import Destination as DestinationRow
from mackuper.restore.formats import ENCRYPTED_SUFFIX


@dataclass
class ImportReport:
    manifests: int = 0
    imported: int = 0
    already_known: int = 0
    jobs_created: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifests": self.manifests,
            "imported": self.imported,
            "already_known": self.already_known,
            "jobs_created": self.jobs_created,
            "problems": self.problems[:50],
        }


def _section(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    value = manifest.get(name)
    return value if isinstance(value, dict) else {}


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _job_for(
    session: Session, row: DestinationRow, manifest: dict[str, Any], report: ImportReport
) -> Job:
    described = _section(manifest, "job")
    slug = str(described.get("slug") or "") or slugify(str(described.get("name") or "job"))
    job = session.scalar(select(Job).where(Job.slug == slug))
    if job is not None:
        if row not in job.destinations:
            job.destinations.append(row)
        return job
    name = str(described.get("name") or slug)[:100]
    if session.scalar(select(Job.id).where(Job.name == name)) is not None:
        name = f"{name[:88]} (imported)"
    archive_format = str(manifest.get("format") or "tar.gz")
    job = Job(
        name=name,
        slug=slug,
        enabled=False,
        source_kind="local",
        source_config={"paths": [], "excludes": []},
        archive_format=archive_format if archive_format in ARCHIVE_FORMATS else "tar.gz",
        options={"imported": True},
        destinations=[row],
    )
    session.add(job)
    session.flush()
    report.jobs_created.append(name)
    return job


def import_backups(session: Session, row: DestinationRow, destination: Destination) -> ImportReport:
    """Add every backup found at `destination` that the catalog lacks; commits."""
    report = ImportReport()
    try:
        stored = {item.key: item for item in destination.list(destination.prefix)}
    except DestinationError as error:
        report.problems.append(f"the destination cannot be listed: {error}")
        return report
    known = set(
        session.scalars(
            select(Artifact.key).where(
                Artifact.destination_id == row.id, Artifact.state == ArtifactState.STORED.value
            )
        )
    )
    for key in sorted(stored):
        if not key.endswith(MANIFEST_SUFFIX):
            continue
        report.manifests += 1
        archive_key = key[: -len(MANIFEST_SUFFIX)]
        if archive_key in known:
            report.already_known += 1
            continue
        if archive_key not in stored:
            report.problems.append(f"{key}: its archive is missing")
            continue
        try:
            manifest = json.loads(destination.get_bytes(key))
        except (DestinationError, ValueError) as error:
            report.problems.append(f"{key}: unreadable ({error})")
            continue
        if not isinstance(manifest, dict) or "mackuper_manifest" not in manifest:
            report.problems.append(f"{key}: not a Mackuper manifest")
            continue
        _import_one(session, row, manifest, archive_key, stored[archive_key].size, report)
        report.imported += 1
    session.commit()
    return report


def _import_one(
    session: Session,
    row: DestinationRow,
    manifest: dict[str, Any],
    archive_key: str,
    size: int,
    report: ImportReport,
) -> None:
    job = _job_for(session, row, manifest, report)
    archive = _section(manifest, "archive")
    sha256 = str(archive.get("sha256") or "") or None
    started = _moment(manifest.get("started_at")) or datetime.now(UTC)
    finished = _moment(manifest.get("finished_at")) or started
    files = manifest.get("files")
    run = Run(
        job_id=job.id,
        job_name=job.name,
        kind=RunKind.BACKUP,
        trigger=RunTrigger.IMPORT,
        status=RunStatus.SUCCESS,
        created_at=started,
        started_at=started,
        finished_at=finished,
        archive_name=archive_key.rsplit("/", 1)[-1],
        bytes_written=size,
        files_done=len(files) if isinstance(files, list) else int(manifest.get("file_count") or 0),
        sha256=sha256,
        details={"imported": True, "original_run_id": manifest.get("run_id")},
    )
    session.add(run)
    session.flush()
    session.add(
        Artifact(
            run_id=run.id,
            job_id=job.id,
            destination_id=row.id,
            key=archive_key,
            state=ArtifactState.STORED.value,
            size=size,
            sha256=sha256,
            encrypted=archive_key.endswith(ENCRYPTED_SUFFIX) or bool(manifest.get("encryption")),
            created_at=started,
        )
    )
