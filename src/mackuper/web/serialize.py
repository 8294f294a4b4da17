"""Models as JSON for the API. Secrets never leave: only "set" or "not set"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import object_session

from mackuper import encryption
from mackuper.core.chain import BackupMode
from mackuper.models import Destination, Job, Run, RunKind, RunStatus
from mackuper.runs import queue
from mackuper.runtime import Runtime
from mackuper.schemas.base import secret_status
from mackuper.schemas.destinations import DESTINATION_MODELS


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def destination_json(destination: Destination, runtime: Runtime) -> dict[str, Any]:
    stored = runtime.secrets.decrypt(destination.secrets_encrypted)
    return {
        "id": destination.id,
        "name": destination.name,
        "kind": destination.kind,
        "config": destination.config,
        "secrets": (
            secret_status(DESTINATION_MODELS[destination.kind], stored)
            if destination.kind in DESTINATION_MODELS
            else {}
        ),
        "created_at": iso(destination.created_at),
    }


def backup_mode_json(job: Job) -> dict[str, Any]:
    mode = BackupMode.from_options(job.options)
    return {
        "mode": "incremental" if mode.incremental else "full",
        "full_every_runs": mode.full_every_runs,
        "full_every_days": mode.full_every_days,
    }


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "slug": job.slug,
        "enabled": job.enabled,
        "source_kind": job.source_kind,
        "source": job.source_config,
        "archive_format": job.archive_format,
        "compression_level": job.compression_level,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "retention": job.retention,
        "notifications": job.notifications,
        "hooks": job.hooks,
        "encryption": encryption.describe(job.encryption or {}),
        "worker_label": job.worker_label,
        "stop_containers": (job.options or {}).get("stop_containers") or [],
        "backup_mode": backup_mode_json(job),
        "destination_ids": [destination.id for destination in job.destinations],
        "destinations": [
            {"id": destination.id, "name": destination.name, "kind": destination.kind}
            for destination in job.destinations
        ],
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    }


def run_json(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "job_id": run.job_id,
        "job_name": run.job_name,
        "kind": run.kind,
        "trigger": run.trigger,
        "status": run.status,
        "scheduled_for": iso(run.scheduled_for),
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_seconds": run.duration_seconds,
        "archive_name": run.archive_name,
        "bytes_read": run.bytes_read,
        "bytes_written": run.bytes_written,
        "files_done": run.files_done,
        "current_file": run.current_file,
        "sha256": run.sha256,
        "blake3": run.blake3,
        "error": run.error,
        "cancel_requested": run.cancel_requested,
        "worker_id": run.worker_id,
        "worker_label": run.worker_label,
        **_queue_json(run),
        "summary": _kind_summary(run),
        "artifacts": [
            {
                "id": artifact.id,
                "destination_id": artifact.destination_id,
                "destination": artifact.destination.name,
                "key": artifact.key,
                "state": artifact.state,
                "size": artifact.size,
                "sha256": artifact.sha256,
                "blake3": artifact.blake3,
            }
            for artifact in run.artifacts
        ],
    }


_RESULT_NUMBERS = (
    "files",
    "directories",
    "links",
    "bytes",
    "skipped",
    "renamed",
    "refused",
    "failed",
    "size",
    "entries",
    "files_checked",
)


def _kind_summary(run: Run) -> dict[str, Any]:
    """What a restore or verification was asked to do and found, for its page (no secret:
    a restore's keys and SSH credentials are never in `details` in the clear)."""
    details = run.details or {}
    raw = details.get("results")
    results = raw if isinstance(raw, dict) else {}
    numbers = {
        name: results[name]
        for name in _RESULT_NUMBERS
        if isinstance(results.get(name), int) and not isinstance(results.get(name), bool)
    }
    if run.kind is RunKind.RESTORE:
        target = details.get("target")
        where = target if isinstance(target, dict) else {}
        host = where.get("host")
        paths = details.get("paths")
        return {
            "dry_run": bool(details.get("dry_run")),
            "policy": str(details.get("policy") or ""),
            "target": f"{where.get('username')}@{host}:{where.get('path')}"
            if host
            else str(where.get("path") or ""),
            "selected_paths": len(paths) if isinstance(paths, list) else 0,
            "results": numbers,
        }
    if run.kind is RunKind.VERIFY:
        return {"deep": bool(details.get("deep")), "results": numbers}
    return {}


def _queue_json(run: Run) -> dict[str, Any]:
    """A queued run's place in its lane and what it waits for; nulls once it has started."""
    session = object_session(run)
    if session is None or run.status is not RunStatus.QUEUED:
        return {"queue_position": None, "waiting_for": None}
    live = queue.live_labels(session, datetime.now(UTC)) if run.worker_label else set()
    return {
        "queue_position": queue.position(session, run),
        "waiting_for": queue.waiting_for(run, live),
    }
