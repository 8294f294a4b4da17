"""Jobs API: create, edit, enable, run now, delete; and the cron preview."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from mackuper.core import schedule
from mackuper.core.chain import BackupMode
from mackuper.core.naming import slugify
from mackuper.core.retention import Policy, RetentionError
from mackuper.installation import timezone as installation_timezone
from mackuper.models import Destination, Job, Run, RunStatus
from mackuper.runs import enqueue
from mackuper.runs.retention import delete_stored_backups, locks_in_the_way
from mackuper.runs.retention import preview as retention_preview
from mackuper.schemas.answers import (
    DeletedJob,
    JobAnswer,
    JobsAnswer,
    RetentionPreview,
    RunNowAnswer,
    SavedJobAnswer,
    SchedulePreview,
)
from mackuper.schemas.base import KindSettings, sentence
from mackuper.schemas.encryption import Encryption
from mackuper.schemas.jobs import (
    DeleteJobBody,
    EnabledBody,
    JobBody,
    RetentionPreviewQuery,
    RunNowBody,
    SchedulePreviewQuery,
)
from mackuper.schemas.sources import SOURCE_MODELS
from mackuper.web import job_alerts
from mackuper.web.database import get_db, runtime
from mackuper.web.encryption import unconfirmed_key
from mackuper.web.forms import fail, field_errors, field_messages
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import job_json, run_json

logger = logging.getLogger(__name__)
blueprint = Blueprint("jobs", __name__, url_prefix="/api")


def _unique_slug(name: str) -> str:
    base = slugify(name)
    taken = set(get_db().scalars(select(Job.slug).where(Job.slug.like(f"{base}%"))))
    slug, counter = base, 2
    while slug in taken:
        slug, counter = f"{base}-{counter}", counter + 1
    return slug


def _apply(job: Job, body: JobBody) -> None:
    """Put the job form into `job`; aborts with field messages when it does not fit.

    Nothing is written before every check passed, so a refused form creates nothing.
    """
    secrets = runtime().secrets
    errors: dict[str, str] = {}
    if not body.name:
        errors["name"] = "Give the job a name."
    source: KindSettings | None = None
    try:
        source = SOURCE_MODELS[body.source_kind].model_validate(body.source)
    except ValidationError as error:
        errors.update(field_messages(error, ("source",)))
    if source is not None:
        if job.source_kind == body.source_kind:
            source = source.keep_stored(secrets.decrypt(job.source_secrets_encrypted))
        errors.update(source.problems())
    errors.update(_schedule_problems(body))
    chosen = list(
        get_db().scalars(select(Destination).where(Destination.id.in_(body.destination_ids)))
    )
    if not body.destination_ids:
        errors["destination_ids"] = "Choose at least one destination."
    elif len(chosen) != len(set(body.destination_ids)):
        errors["destination_ids"] = "A chosen destination does not exist."
    encryption = None
    if "encryption" in body.model_fields_set:
        encryption = (body.encryption or Encryption()).keep_stored(
            secrets.decrypt(job.encryption_secrets_encrypted)
        )
        errors.update({f"encryption.{k}": v for k, v in encryption.problems().items()})
        errors.update(unconfirmed_key(encryption, job.encryption or {}))
    alerts = job_alerts.settle(job, body)
    errors.update(alerts.errors)
    errors.update(_backup_mode_problems(job, body))
    if errors or source is None:
        field_errors(errors)
    if body.schedule != job.schedule:
        job.schedule_anchor = datetime.now(UTC)
    job.name = body.name
    job.source_kind = body.source_kind
    job.source_config = source.public()
    job.source_secrets_encrypted = _sealed(source.secrets())
    job.archive_format = body.archive_format
    job.compression_level = body.compression_level
    job.schedule = body.schedule
    job.timezone = body.timezone
    if "retention" in body.model_fields_set:
        job.retention = body.retention.stored() if body.retention else {}
    job.enabled = body.enabled
    job.destinations = chosen
    if "worker_label" in body.model_fields_set:
        job.worker_label = body.worker_label
    if "stop_containers" in body.model_fields_set:
        job.options = {
            **(job.options or {}),
            "stop_containers": list(dict.fromkeys(body.stop_containers or [])),
        }
    if "backup_mode" in body.model_fields_set:
        job.options = {
            **(job.options or {}),
            "backup_mode": body.backup_mode.stored() if body.backup_mode else {},
        }
    if encryption is not None:
        job.encryption = encryption.public()
        job.encryption_secrets_encrypted = _sealed(encryption.secrets())
    job_alerts.apply(job, alerts)


def _backup_mode_problems(job: Job, body: JobBody) -> dict[str, str]:
    """Incremental backups need a tar format, and a local source or an SSH source in
    tar mode, whose remote GNU tar makes the chain (issue 17; core/snar.py)."""
    if "backup_mode" in body.model_fields_set:
        incremental = body.backup_mode is not None and body.backup_mode.mode == "incremental"
    else:
        incremental = BackupMode.from_options(job.options).incremental
    if not incremental:
        return {}
    if body.archive_format == "zip":
        return {
            "backup_mode.mode": "ZIP archives are full backups only: choose a tar format"
            " for incremental backups, or make full backups."
        }
    transfer = body.source.get("transfer") if isinstance(body.source, dict) else None
    if body.source_kind == "ssh" and transfer != "sftp":
        return {}
    if body.source_kind == "ssh":
        return {
            "backup_mode.mode": "Incremental backups of an SSH source are made by GNU tar on"
            " the server: choose tar or automatic transfer, or make full backups."
        }
    if body.source_kind != "local":
        return {
            "backup_mode.mode": "Incremental backups are made of local folders and SSH"
            " sources only for now; this source makes full backups."
        }
    return {}


def _sealed(secrets: dict[str, Any]) -> str | None:
    """`secrets` encrypted with the master key; None when there are none."""
    return runtime().secrets.encrypt(secrets) if secrets else None


def _schedule_problems(body: JobBody) -> dict[str, str]:
    if body.timezone:
        try:
            schedule.zone(body.timezone)
        except schedule.ScheduleError as error:
            return {"timezone": sentence(str(error))}
    if body.schedule:
        try:
            schedule.parse(body.schedule, body.timezone or installation_timezone(get_db()))
        except schedule.ScheduleError as error:
            return {"schedule": sentence(str(error))}
    return {}


def _get(job_id: int) -> Job:
    job = get_db().get(Job, job_id)
    if job is None:
        fail("No such job.", 404)
    return job


def _save(job: Job) -> None:
    session = get_db()
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        field_errors({"name": f"A job named {job.name!r} already exists."}, 409)


@blueprint.get("/jobs")
@login_required
@operation("List the jobs", responses={200: JobsAnswer})
def list_jobs() -> Response:
    jobs = get_db().scalars(select(Job).order_by(Job.name)).all()
    return jsonify(jobs=[job_json(job) for job in jobs])


@blueprint.post("/jobs")
@login_required
@operation("Create a job", body=JobBody, responses={201: SavedJobAnswer})
def create_job(body: JobBody) -> tuple[Response, int]:
    job = Job(name="", slug="", source_kind="")
    _apply(job, body)
    job.slug = _unique_slug(job.name)
    get_db().add(job)
    _save(job)
    logger.info("job %s created", job.name)
    return jsonify(job=job_json(job), warnings=missing_paths(job)), 201


@blueprint.get("/jobs/<int:job_id>")
@login_required
@operation("One job", responses={200: JobAnswer})
def get_job(job_id: int) -> Response:
    return jsonify(job=job_json(_get(job_id)))


@blueprint.put("/jobs/<int:job_id>")
@login_required
@operation(
    "Change a job (secrets left blank are kept)", body=JobBody, responses={200: SavedJobAnswer}
)
def update_job(job_id: int, body: JobBody) -> Response:
    job = _get(job_id)
    _apply(job, body)
    with get_db().no_autoflush:  # a name clash is then refused by _save, not here
        enqueue.relabel_queued(get_db(), job)
    _save(job)
    return jsonify(job=job_json(job), warnings=missing_paths(job))


def missing_paths(job: Job) -> list[str]:
    """A sentence per local source path this server cannot find. A warning, not a
    refusal: a disk unmounted now may be back before the first run. A job labelled for
    workers this server is not (MACKUPER_WORKER_LABELS) reads its files elsewhere, so
    its paths are not checked here."""
    if job.source_kind != "local":
        return []
    if job.worker_label and job.worker_label not in runtime().settings.worker_labels:
        return []
    return [
        f"{path} does not exist on this server: check the path (or its disk) before a backup runs."
        for path in job.source_config.get("paths", [])
        if not Path(path).exists()
    ]


@blueprint.post("/jobs/<int:job_id>/enabled")
@login_required
@operation("Enable or disable a job's schedule", body=EnabledBody, responses={200: JobAnswer})
def set_enabled(job_id: int, body: EnabledBody) -> Response:
    job = _get(job_id)
    job.enabled = body.enabled
    job.schedule_anchor = datetime.now(UTC)
    _save(job)
    return jsonify(job=job_json(job))


@blueprint.delete("/jobs/<int:job_id>")
@login_required
@operation(
    "Delete a job, and its stored backups if asked",
    body=DeleteJobBody,
    optional_body=True,
    responses={200: DeletedJob},
)
def delete_job(job_id: int, body: DeleteJobBody) -> Response:
    job = _get(job_id)
    session = get_db()
    running = session.scalar(
        select(Run.id).where(
            Run.job_id == job.id,
            Run.status.in_([RunStatus.RUNNING.value, RunStatus.QUEUED.value]),
        )
    )
    if running:
        fail("This job has a backup queued or running; cancel it first.", 409)
    deleted = 0
    if body.delete_backups:
        deleted, failed = delete_stored_backups(session, runtime().secrets, job.id)
        if failed:
            fail(
                f"{failed} stored backup(s) could not be deleted, so the job was kept;"
                " their run logs say why.",
                502,
            )
    session.delete(job)
    session.commit()
    kept = "deleted" if deleted else "kept"
    logger.info("job %s deleted (%d stored backups deleted, others %s)", job.name, deleted, kept)
    return jsonify(ok=True, backups_deleted=deleted)


@blueprint.post("/jobs/<int:job_id>/run")
@login_required
@operation(
    "Queue a backup of the job now, or answer the one already queued or running",
    body=RunNowBody,
    optional_body=True,
    responses={200: RunNowAnswer, 202: RunNowAnswer},
)
def run_now(job_id: int, body: RunNowBody) -> tuple[Response, int]:
    """202 with a new run; 200 with the job's backup that is already queued or running."""
    job = _get(job_id)
    session = get_db()
    session.commit()  # end the read: the next statement takes the write lock (SQLite)
    run, queued = enqueue.run_now(session, job, another=body.another)
    if queued:
        return jsonify(run=run_json(run), queued=True, message="Backup queued."), 202
    message = (
        f"A backup of {job.name} is already {run.status.value} (run #{run.id});"
        " no second one was queued."
    )
    return jsonify(run=run_json(run), queued=False, message=message), 200


@blueprint.get("/schedule/preview")
@login_required
@operation(
    "The next five times a cron expression fires",
    query=SchedulePreviewQuery,
    responses={200: SchedulePreview},
)
def preview_schedule(query: SchedulePreviewQuery) -> Response:
    timezone = query.timezone or installation_timezone(get_db())
    try:
        times = schedule.next_fire_times(query.cron, timezone, datetime.now(UTC), 5)
    except schedule.ScheduleError as error:
        fail(sentence(str(error)), 422)
    return jsonify(timezone=timezone, next=[time.isoformat() for time in times])


@blueprint.get("/jobs/<int:job_id>/retention/preview")
@login_required
@operation(
    "What retention would delete and keep now",
    query=RetentionPreviewQuery,
    responses={200: RetentionPreview},
)
def preview_retention(job_id: int, query: RetentionPreviewQuery) -> Response:
    """What retention would delete and keep now, and why.

    Query arguments keep_days, keep_last, keep_daily... preview an unsaved policy;
    without them the job's saved policy is used.
    """
    job = _get(job_id)
    numbers: dict[str, int] = query.model_dump(exclude_none=True)
    now = datetime.now(UTC)
    try:
        # The previewed policy is never set on the job: flushed, that change held the
        # database's write lock while the storage was asked about each lock below.
        policy = Policy.from_json(numbers or job.retention)
        plan = retention_preview(get_db(), job, now, policy)
        locked = locks_in_the_way(runtime().secrets, plan, now)
    except (RetentionError, schedule.ScheduleError) as error:
        text = str(error)
        fail(text[:1].upper() + text[1:] + ".", 422)
    items = [
        {
            "run_id": decision.backup.id,
            "finished_at": decision.backup.finished_at.isoformat(),
            "successful": decision.backup.successful,
            "keep": decision.keep,
            "reasons": list(decision.reasons),
            "locked_until": locked[decision.backup.id].isoformat()
            if decision.backup.id in locked
            else None,
            "artifacts": [
                {"id": a.id, "destination": a.destination.name, "key": a.key, "size": a.size}
                for a in plan.artifacts[decision.backup.id]
            ],
            "chain": {"level": point.level, "full_run_id": point.full_run_id, "needs": point.needs}
            if (point := plan.points.get(decision.backup.id)) is not None
            else None,
            "needed_by": list(decision.needed_by),
            "kept_for_chain": decision.kept_for_chain_only,
            "missing": list(decision.missing),
        }
        for decision in plan.decisions
    ]
    deleted = sum(1 for item in items if not item["keep"])
    return jsonify(
        policy=numbers or policy.to_json(),
        delete_count=deleted,
        keep_count=len(items) - deleted,
        backups=items,
    )
