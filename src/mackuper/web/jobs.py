"""Jobs API: create, edit, enable, run now, delete; and the cron preview."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from mackuper import encryption as encryption_settings
from mackuper.core import schedule
from mackuper.core.naming import ARCHIVE_FORMATS, slugify
from mackuper.core.retention import FIELDS as RETENTION_FIELDS
from mackuper.core.retention import Policy, RetentionError
from mackuper.installation import timezone as installation_timezone
from mackuper.models import Destination, Job, Run, RunStatus
from mackuper.pipeline.streams import LEVEL_RANGES
from mackuper.runs import enqueue
from mackuper.runs.retention import delete_stored_backups
from mackuper.runs.retention import preview as retention_preview
from mackuper.sources import registry as sources
from mackuper.web import job_alerts
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors, json_body, sentence
from mackuper.web.security import login_required
from mackuper.web.serialize import job_json, run_json

logger = logging.getLogger(__name__)
blueprint = Blueprint("jobs", __name__, url_prefix="/api")

SUPPORTED_FORMATS = tuple(ARCHIVE_FORMATS)


def _unique_slug(name: str) -> str:
    base = slugify(name)
    taken = set(get_db().scalars(select(Job.slug).where(Job.slug.like(f"{base}%"))))
    slug, counter = base, 2
    while slug in taken:
        slug, counter = f"{base}-{counter}", counter + 1
    return slug


def _apply(job: Job, payload: dict[str, Any]) -> None:
    """Validate the job form into `job`; aborts with field messages when wrong."""
    errors: dict[str, str] = {}
    name = str(payload.get("name", "")).strip()
    if not name:
        errors["name"] = "Give the job a name."
    elif len(name) > 100:
        errors["name"] = "Use at most 100 characters."
    source_kind = str(payload.get("source_kind", "local"))
    raw_source = payload.get("source")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    stored_secrets = (
        runtime().secrets.decrypt(job.source_secrets_encrypted)
        if job.source_secrets_encrypted and job.source_kind == source_kind
        else {}
    )
    source_config, source_secrets, source_errors = sources.validate(
        source_kind, source, stored_secrets
    )
    errors.update(source_errors)
    archive_format = str(payload.get("archive_format", "tar.gz"))
    if archive_format not in SUPPORTED_FORMATS:
        errors["archive_format"] = "Choose one of: " + ", ".join(SUPPORTED_FORMATS) + "."
    level = payload.get("compression_level")
    if level in ("", None):
        level = None
    elif not isinstance(level, int) or archive_format not in LEVEL_RANGES:
        errors["compression_level"] = "This format takes no compression level."
    else:
        low, high = LEVEL_RANGES[archive_format]
        if not low <= level <= high:
            errors["compression_level"] = f"Use a level from {low} to {high}."
    cron = str(payload.get("schedule") or "").strip() or None
    timezone = str(payload.get("timezone") or "").strip() or None
    try:
        if timezone:
            schedule.zone(timezone)
    except schedule.ScheduleError as error:
        errors["timezone"] = sentence(str(error))
    if cron and "timezone" not in errors:
        try:
            schedule.parse(cron, timezone or installation_timezone(get_db()))
        except schedule.ScheduleError as error:
            errors["schedule"] = sentence(str(error))
    policy: Policy | None = None
    if "retention" in payload:
        raw_retention = payload.get("retention")
        try:
            policy = Policy.from_json(raw_retention if isinstance(raw_retention, dict) else None)
        except RetentionError as error:
            errors["retention"] = errors[f"retention.{error.field}"] = f"{error}."
    ids = payload.get("destination_ids")
    chosen: list[Destination] = []
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
        errors["destination_ids"] = "Choose at least one destination."
    else:
        chosen = list(get_db().scalars(select(Destination).where(Destination.id.in_(ids))))
        if len(chosen) != len(set(ids)):
            errors["destination_ids"] = "A chosen destination does not exist."
    encryption = _encryption(job, payload)
    errors.update(encryption.errors)
    alerts = job_alerts.validate(job, payload)
    errors.update(alerts.errors)
    if errors:
        field_errors(errors)
    if cron != job.schedule:
        job.schedule_anchor = datetime.now(UTC)
    job.name = name
    job.source_kind = source_kind
    job.source_config = source_config
    job.source_secrets_encrypted = (
        runtime().secrets.encrypt(source_secrets) if source_secrets else None
    )
    job.archive_format = archive_format
    job.compression_level = level
    job.schedule = cron
    job.timezone = timezone
    if policy is not None:
        job.retention = policy.to_json()
    job.enabled = bool(payload.get("enabled", True))
    job.destinations = chosen
    job.encryption = encryption.public
    job_alerts.apply(job, alerts)
    job.encryption_secrets_encrypted = (
        runtime().secrets.encrypt(encryption.secrets) if encryption.secrets else None
    )


def _encryption(job: Job, payload: dict[str, Any]) -> encryption_settings.Validated:
    """The job's new encryption settings; a payload without `encryption` keeps them."""
    stored = runtime().secrets.decrypt(job.encryption_secrets_encrypted)
    current = job.encryption or {}
    if "encryption" not in payload:
        return encryption_settings.Validated(current, stored, {})
    return encryption_settings.validate(payload["encryption"], current, stored)


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
def list_jobs() -> Response:
    jobs = get_db().scalars(select(Job).order_by(Job.name)).all()
    return jsonify(jobs=[job_json(job) for job in jobs])


@blueprint.post("/jobs")
@login_required
def create_job() -> tuple[Response, int]:
    payload = json_body()
    job = Job(name="", slug="", source_kind="local")
    _apply(job, payload)
    job.slug = _unique_slug(job.name)
    get_db().add(job)
    _save(job)
    logger.info("job %s created", job.name)
    return jsonify(job=job_json(job)), 201


@blueprint.get("/jobs/<int:job_id>")
@login_required
def get_job(job_id: int) -> Response:
    return jsonify(job=job_json(_get(job_id)))


@blueprint.put("/jobs/<int:job_id>")
@login_required
def update_job(job_id: int) -> Response:
    job = _get(job_id)
    _apply(job, json_body())
    _save(job)
    return jsonify(job=job_json(job))


@blueprint.post("/jobs/<int:job_id>/enabled")
@login_required
def set_enabled(job_id: int) -> Response:
    job = _get(job_id)
    job.enabled = bool(json_body().get("enabled"))
    job.schedule_anchor = datetime.now(UTC)
    _save(job)
    return jsonify(job=job_json(job))


@blueprint.delete("/jobs/<int:job_id>")
@login_required
def delete_job(job_id: int) -> Response:
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
    body = request.get_json(silent=True)
    deleted = 0
    if isinstance(body, dict) and body.get("delete_backups") is True:
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
def run_now(job_id: int) -> tuple[Response, int]:
    job = _get(job_id)
    run = enqueue.run_now(get_db(), job)
    return jsonify(run=run_json(run)), 202


@blueprint.get("/schedule/preview")
@login_required
def preview_schedule() -> Response:
    expression = request.args.get("cron", "")
    timezone = request.args.get("timezone") or installation_timezone(get_db())
    try:
        times = schedule.next_fire_times(expression, timezone, datetime.now(UTC), 5)
    except schedule.ScheduleError as error:
        fail(sentence(str(error)), 422)
    return jsonify(timezone=timezone, next=[time.isoformat() for time in times])


@blueprint.get("/jobs/<int:job_id>/retention/preview")
@login_required
def preview_retention(job_id: int) -> Response:
    """What retention would delete and keep now, and why.

    Query arguments keep_days, keep_last, keep_daily... preview an unsaved policy;
    without them the job's saved policy is used.
    """
    job = _get(job_id)
    asked = {name: request.args[name] for name in RETENTION_FIELDS if request.args.get(name)}
    if asked:
        try:
            numbers = {name: int(value) for name, value in asked.items()}
        except ValueError:
            fail("Retention counts are whole numbers.", 422)
        job.retention = numbers
    try:
        plan = retention_preview(get_db(), job, datetime.now(UTC))
    except (RetentionError, schedule.ScheduleError) as error:
        text = str(error)
        fail(text[:1].upper() + text[1:] + ".", 422)
    finally:
        get_db().rollback()  # a previewed policy is never saved
    items = [
        {
            "run_id": decision.backup.id,
            "finished_at": decision.backup.finished_at.isoformat(),
            "successful": decision.backup.successful,
            "keep": decision.keep,
            "reasons": list(decision.reasons),
            "artifacts": [
                {"id": a.id, "destination": a.destination.name, "key": a.key, "size": a.size}
                for a in plan.artifacts[decision.backup.id]
            ],
        }
        for decision in plan.decisions
    ]
    deleted = sum(1 for item in items if not item["keep"])
    return jsonify(
        policy=Policy.from_json(job.retention).to_json() if not asked else numbers,
        delete_count=deleted,
        keep_count=len(items) - deleted,
        backups=items,
    )
