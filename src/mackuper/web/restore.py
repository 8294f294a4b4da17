"""Restore tab and its API: stored backups, their file trees, downloads, restore,
verify and import."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, render_template, request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from mackuper import installation
from mackuper.core import schedule
from mackuper.destinations.base import DestinationError
from mackuper.models import Artifact, ArtifactState, Job, Run, RunTrigger
from mackuper.models import Destination as DestinationRow
from mackuper.restore.archives import StoredArchive
from mackuper.restore.catalog import import_backups
from mackuper.restore.chain import point_manifest
from mackuper.restore.download import (
    Download,
    download_filename,
    extract_path,
    point_tar,
    whole_archive,
)
from mackuper.restore.errors import RestoreError
from mackuper.restore.formats import format_of_key
from mackuper.restore.keys import KeyNeeded, KeyRefused, check_opens
from mackuper.restore.manifest import (
    children,
    manifest_files,
    read_manifest,
    search,
    unsealed,
)
from mackuper.restore.request import parse_restore
from mackuper.restore.schedule import read_schedule, save_schedule
from mackuper.restore.storage import content_disposition
from mackuper.restore.stored import build_destination, stored_archive
from mackuper.restore.volume import backed_up_volumes
from mackuper.runs import enqueue
from mackuper.runs.database_restore import dumped_databases
from mackuper.schemas.answers import (
    BackupAnswer,
    BackupsAnswer,
    DownloadLink,
    ImportAnswer,
    RunAnswer,
    Tree,
    VerifyScheduleAnswer,
)
from mackuper.schemas.api import (
    BackupsQuery,
    DecryptionKeys,
    DownloadQuery,
    ExtractBody,
    ExtractQuery,
    ImportBody,
    RestoreBody,
    TreeBody,
    TreeQuery,
    VerifyBody,
    VerifyScheduleBody,
)
from mackuper.web.access import check_restore_target
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors, json_body, parse
from mackuper.web.operations import FILE_OR_TAR, operation
from mackuper.web.security import login_required
from mackuper.web.serialize import iso, run_json

blueprint = Blueprint("restore", __name__)

PRESIGNED_SECONDS = 900


@blueprint.get("/restore")
@login_required
def page() -> str:
    return render_template("restore.html", tab="restore")


def _sentence(error: Exception) -> str:
    """An error as a sentence: first letter up, one final period (paths keep their case)."""
    text = str(error).rstrip(".")
    return text[:1].upper() + text[1:] + "."


def key_stored(job: Job | None) -> bool:
    """Whether the job keeps a key that opens its backups (a passphrase, or a stored identity)."""
    if job is None:
        return False
    settings = job.encryption or {}
    mode = settings.get("mode") or "none"
    return mode == "passphrase" or (mode == "recipients" and bool(settings.get("identity_stored")))


def backup_json(artifact: Artifact, stored_key: bool = False) -> dict[str, Any]:
    try:
        archive_format, encrypted = format_of_key(artifact.key)
    except RestoreError:
        archive_format, encrypted = "unknown", artifact.encrypted
    return {
        "id": artifact.id,
        "run_id": artifact.run_id,
        "job_id": artifact.job_id,
        "job_name": artifact.run.job_name,
        "destination_id": artifact.destination_id,
        "destination": artifact.destination.name,
        "destination_kind": artifact.destination.kind,
        "key": artifact.key,
        "name": artifact.key.rsplit("/", 1)[-1],
        "created_at": iso(artifact.created_at),
        "size": artifact.size,
        "sha256": artifact.sha256,
        "blake3": artifact.blake3,
        "format": archive_format,
        "encrypted": encrypted or artifact.encrypted,
        "key_stored": stored_key,
        "verified_at": iso(artifact.verified_at),
        "verify_status": artifact.verify_status,
    }


def _artifact(artifact_id: int) -> Artifact:
    artifact = get_db().get(Artifact, artifact_id)
    if artifact is None or artifact.state != ArtifactState.STORED.value:
        fail("No such stored backup.", 404)
    return artifact


def _given(decryption: DecryptionKeys | None) -> dict[str, str]:
    """A key or passphrase sent with this request only: used for it, never stored or logged."""
    if decryption is None:
        return {}
    given = {"key_identity": decryption.identity, "key_passphrase": decryption.passphrase}
    return {name: value for name, value in given.items() if value}


def _job_of(artifact: Artifact) -> Job | None:
    return get_db().get(Job, artifact.job_id) if artifact.job_id is not None else None


def _archive(artifact: Artifact, given: dict[str, str] | None = None) -> StoredArchive:
    try:
        return stored_archive(runtime(), get_db(), artifact, given or {})
    except (RestoreError, DestinationError) as error:
        fail(_sentence(error), 409)


@blueprint.get("/api/backups")
@login_required
@operation(
    "Stored backups, newest first or grouped by job, a page at a time",
    query=BackupsQuery,
    responses={200: BackupsAnswer},
)
def list_backups(query: BackupsQuery) -> Response:
    statement = select(Artifact).where(Artifact.state == ArtifactState.STORED.value)
    if query.job_id is not None:
        statement = statement.where(Artifact.job_id == query.job_id)
    if query.destination_id is not None:
        statement = statement.where(Artifact.destination_id == query.destination_id)
    session = get_db()
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    newest = (Artifact.created_at.desc(), Artifact.id.desc())
    if query.order == "job":
        statement = statement.join(Run, Run.id == Artifact.run_id).order_by(
            func.lower(Run.job_name), Artifact.job_id, *newest
        )
    else:
        statement = statement.order_by(*newest)
    rows = session.scalars(
        statement.options(selectinload(Artifact.run))
        .offset((query.page - 1) * query.per_page)
        .limit(query.per_page)
    )
    artifacts = list(rows)
    job_ids = {artifact.job_id for artifact in artifacts if artifact.job_id is not None}
    jobs = get_db().scalars(select(Job).where(Job.id.in_(job_ids)))
    stored = {job.id: key_stored(job) for job in jobs}
    return jsonify(
        backups=[
            backup_json(artifact, stored.get(artifact.job_id or 0, False)) for artifact in artifacts
        ],
        total=total,
        page=query.page,
        per_page=query.per_page,
    )


def _manifest(artifact: Artifact, given: dict[str, str] | None = None) -> dict[str, Any]:
    archive = _archive(artifact, given)
    try:
        manifest = unsealed(read_manifest(archive.destination, artifact.key), archive.keys)
        # A point listing only its changes: its whole list, from its chain's manifests.
        whole = point_manifest(archive, manifest)
        return whole if whole is not None else manifest
    except RestoreError as error:
        fail(_sentence(error), 409)


@blueprint.get("/api/backups/<int:artifact_id>")
@login_required
@operation("A stored backup and its manifest's summary", responses={200: BackupAnswer})
def get_backup(artifact_id: int) -> Response:
    artifact = _artifact(artifact_id)
    manifest = _manifest(artifact)
    files = manifest_files(manifest)
    return jsonify(
        backup=backup_json(artifact, key_stored(_job_of(artifact))),
        manifest={
            "started_at": manifest.get("started_at"),
            "finished_at": manifest.get("finished_at"),
            "format": manifest.get("format"),
            "source": manifest.get("source"),
            "archive": manifest.get("archive"),
            "entries": len(files),
            "file_list": "available"
            if files
            else ("sealed" if manifest.get("sealed_age") else "not available"),
        },
    )


@blueprint.get("/api/backups/<int:artifact_id>/tree")
@login_required
@operation(
    "A folder of a backup's file list, or a search in it",
    query=TreeQuery,
    responses={200: Tree},
)
def backup_tree(artifact_id: int, query: TreeQuery) -> Response:
    return _tree(_manifest(_artifact(artifact_id)), query.q, query.path)


@blueprint.post("/api/backups/<int:artifact_id>/tree")
@login_required
@operation(
    "A folder of an encrypted backup's file list, or a search in it, with its key",
    body=TreeBody,
    responses={200: Tree},
)
def backup_tree_with_key(artifact_id: int, body: TreeBody) -> Response:
    """The key or passphrase in the body opens the sealed file list for this request
    only; it is neither stored nor logged. A key that does not open it is a 422."""
    given = _given(body.decryption)
    manifest = _manifest(_artifact(artifact_id), given)
    if given and _sealed(manifest):
        field_errors({"decryption": _sentence(KeyRefused())})
    return _tree(manifest, body.q, body.path)


def _sealed(manifest: dict[str, Any]) -> bool:
    """The file list is encrypted and no key at hand opened it."""
    return bool(manifest.get("sealed_age")) and not manifest_files(manifest)


def _tree(manifest: dict[str, Any], text: str, path: str) -> Response:
    files = manifest_files(manifest)
    sealed = _sealed(manifest)
    dumped = dumped_databases(manifest)
    databases = [item["database"] for item in dumped]
    volumes = backed_up_volumes([str(item["path"]) for item in files])
    dumps = [
        {
            "database": item["database"],
            "kind": str(item["path"]).split("/", 1)[0],
            "size": item.get("size") if isinstance(item.get("size"), int) else None,
        }
        for item in dumped
    ]
    if text:
        matches, cut = search(files, text)
        return jsonify(
            entries=[node.as_dict() for node in matches],
            truncated=cut,
            query=text,
            sealed=sealed,
            databases=databases,
            dumps=dumps,
            volumes=volumes,
        )
    folder = path.strip("/")
    nodes = children(files, folder)
    return jsonify(
        path=folder,
        entries=[node.as_dict() for node in nodes],
        truncated=False,
        sealed=sealed,
        databases=databases,
        dumps=dumps,
        volumes=volumes,
    )


def _send(download: Download) -> Response:
    headers = {"Content-Disposition": content_disposition(download.filename)}
    if download.size is not None:
        headers["Content-Length"] = str(download.size)
    return Response(
        download.body,
        mimetype=download.content_type,
        headers=headers,
        direct_passthrough=True,
    )


@blueprint.get("/api/backups/<int:artifact_id>/download")
@login_required
@operation(
    "Download a whole backup, as stored or as one plain tar (an incremental point whole)",
    query=DownloadQuery,
    responses={200: FILE_OR_TAR},
)
def download_backup(artifact_id: int, query: DownloadQuery) -> Response:
    artifact = _artifact(artifact_id)
    archive = _archive(artifact)
    filename = download_filename(artifact.run.job_name, artifact.key)
    try:
        if query.shape == "tar":
            download = point_tar(archive, filename)
        else:
            download = whole_archive(archive, filename)
    except (RestoreError, DestinationError) as error:
        fail(_sentence(error), 409)
    return _send(download)


@blueprint.get("/api/backups/<int:artifact_id>/download-url")
@login_required
@operation("A presigned S3 link to a backup (15 minutes)", responses={200: DownloadLink})
def download_url(artifact_id: int) -> Response:
    artifact = _artifact(artifact_id)
    archive = _archive(artifact)
    filename = download_filename(artifact.run.job_name, artifact.key)
    url = archive.destination.presign(artifact.key, filename, PRESIGNED_SECONDS)
    if url is None:
        fail("Only S3 backups have direct download links; use the download instead.", 409)
    return jsonify(url=url, expires_in=PRESIGNED_SECONDS, filename=filename)


@blueprint.get("/api/backups/<int:artifact_id>/extract")
@login_required
@operation(
    "Download one file, or one folder as a tar, from a backup",
    query=ExtractQuery,
    responses={200: FILE_OR_TAR},
)
def extract_from_backup(artifact_id: int, query: ExtractQuery) -> Response:
    return _extract(artifact_id, query.path, {})


@blueprint.post("/api/backups/<int:artifact_id>/extract")
@login_required
@operation(
    "Download one file, or one folder as a tar, from an encrypted backup, with its key",
    body=ExtractBody,
    responses={200: FILE_OR_TAR},
    parse_body=False,
)
def extract_with_key(artifact_id: int) -> Response:
    """The body is JSON, or the form the Restore page posts (`path`, `identity`) so
    that the browser streams the download; the key is used for this request only,
    never stored or logged."""
    if request.is_json:
        body = parse(ExtractBody, json_body())
    else:
        form = {"path": request.form.get("path", ""), "identity": request.form.get("identity", "")}
        body = parse(
            ExtractBody, {"path": form["path"], "decryption": {"identity": form["identity"]}}
        )
    return _extract(artifact_id, body.path, _given(body.decryption))


def _extract(artifact_id: int, path: str, given: dict[str, str]) -> Response:
    if not path.strip("/"):
        fail("Choose a file or folder to download.")
    archive = _archive(_artifact(artifact_id), given)
    try:
        download = extract_path(archive, path)
    except (RestoreError, DestinationError) as error:
        fail(_sentence(error), 404 if "not in this backup" in str(error) else 409)
    return _send(download)


@blueprint.post("/api/restore")
@login_required
@operation("Queue a restore of a backup", body=RestoreBody, responses={202: RunAnswer})
def start_restore(body: RestoreBody) -> tuple[Response, int]:
    check_restore_target(body.target)
    artifact = _artifact(body.artifact_id)
    payload = body.model_dump(mode="json")
    if body.target.kind == "original":
        payload["target"] = _original_location(artifact)
    parsed = parse_restore(payload)
    if isinstance(parsed, dict):
        field_errors(parsed)
    try:
        check_opens(_archive(artifact, parsed.secrets))
    except (KeyNeeded, KeyRefused) as error:
        field_errors({"decryption": _sentence(error)})
    except (RestoreError, DestinationError) as error:
        fail(_sentence(error), 409)
    run = enqueue.queue_restore(get_db(), runtime(), artifact, parsed, RunTrigger.MANUAL)
    return jsonify(run=run_json(run)), 202


def _original_location(artifact: Artifact) -> dict[str, Any]:
    """The target that puts files back where they were backed up from.

    Archive members are the source's absolute paths without the leading slash, so the
    original location is `/` on the job's own machine: this host (or the worker the
    job runs on) for local folders, the job's SSH server with its saved login and
    pinned host key for SSH sources.
    """
    job = _job_of(artifact)
    places: dict[str, dict[str, Any]] = {
        "local": {"kind": "local", "path": "/"},
        "ssh": {"kind": "ssh", "same_as_source": True, "path": "/"},
    }
    place = places.get(job.source_kind) if job is not None else None
    if place is None:
        field_errors(
            {
                "target.kind": "Where this backup came from is unknown (its job is gone or"
                " backs up no folders): choose a directory."
            }
        )
    return place


@blueprint.post("/api/verify")
@login_required
@operation("Queue a verification of a backup", body=VerifyBody, responses={202: RunAnswer})
def start_verify(body: VerifyBody) -> tuple[Response, int]:
    artifact = _artifact(body.artifact_id)
    run = enqueue.queue_verify(get_db(), artifact, body.deep, RunTrigger.MANUAL)
    return jsonify(run=run_json(run)), 202


@blueprint.post("/api/import")
@login_required
@operation(
    "Add the backups found at a destination to the catalog",
    body=ImportBody,
    responses={200: ImportAnswer},
)
def import_from_destination(body: ImportBody) -> Response:
    row = get_db().get(DestinationRow, body.destination_id)
    if row is None:
        field_errors({"destination_id": "Choose the destination to scan."})
    try:
        destination = build_destination(runtime(), row)
    except DestinationError as error:
        fail(_sentence(error), 409)
    report = import_backups(get_db(), row, destination)
    return jsonify(report=report.as_dict())


@blueprint.get("/api/verify/schedule")
@login_required
@operation("The schedule of automatic verifications", responses={200: VerifyScheduleAnswer})
def get_verify_schedule() -> Response:
    return jsonify(schedule=read_schedule(get_db()))


@blueprint.put("/api/verify/schedule")
@login_required
@operation(
    "Change the schedule of automatic verifications",
    body=VerifyScheduleBody,
    responses={200: VerifyScheduleAnswer},
)
def set_verify_schedule(body: VerifyScheduleBody) -> Response:
    cron = body.cron or None
    if cron:
        try:
            schedule.parse(cron, installation.timezone(get_db()))
        except schedule.ScheduleError as error:
            field_errors({"cron": _sentence(error)})
    save_schedule(get_db(), cron, body.deep, datetime.now(UTC))
    return jsonify(schedule=read_schedule(get_db()))
