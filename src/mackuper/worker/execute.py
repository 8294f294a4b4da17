"""Execute one claimed run: build its plan, run the pipeline, record the outcome."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy import select, update

from mackuper.destinations import registry as destinations
from mackuper.destinations.base import Destination
from mackuper.encryption import backup_recipients
from mackuper.models import Job, Run, RunStatus
from mackuper.pipeline.errors import PipelineError
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.restore import runs as restore_runs
from mackuper.runs.alerts import RunEdges
from mackuper.runs.outcome import Outcome, from_exception, from_result, is_unexpected
from mackuper.runs.recorder import RunRecorder
from mackuper.runtime import Runtime
from mackuper.sources import registry as sources

logger = logging.getLogger(__name__)


def _plan(runtime: Runtime, run: Run, job: Job) -> BackupPlan:
    built: dict[int, Destination] = {}
    for destination in job.destinations:
        secrets = runtime.secrets.decrypt(destination.secrets_encrypted)
        built[destination.id] = destinations.build(destination.kind, destination.config, secrets)
    source_secrets = runtime.secrets.decrypt(job.source_secrets_encrypted)
    return BackupPlan(
        job_id=job.id,
        job_slug=job.slug,
        job_name=job.name,
        run_id=run.id,
        archive_format=job.archive_format,
        compression_level=job.compression_level,
        source=sources.build(job.source_kind, job.source_config, source_secrets),
        destinations=built,
        started_at=run.started_at or datetime.now(UTC),
        encryption=backup_recipients(
            job.encryption or {}, runtime.secrets.decrypt(job.encryption_secrets_encrypted)
        ),
    )


def execute_run(runtime: Runtime, run_id: int, stopping: threading.Event) -> Outcome:
    """Run a claimed backup to its end and store the outcome; never raises."""
    with runtime.sessions() as session:
        kind = session.scalar(select(Run.kind).where(Run.id == run_id))
    if kind in restore_runs.KINDS:
        return restore_runs.execute_other_run(runtime, run_id, str(kind), stopping)
    recorder = RunRecorder(runtime.sessions, run_id, stopping)
    values: dict[str, object] = {}
    edges: RunEdges | None = None
    try:
        with runtime.sessions() as session:
            run = session.get_one(Run, run_id)
            job = session.get(Job, run.job_id) if run.job_id is not None else None
            edges = RunEdges.load(runtime, recorder, run, job)
            if job is None:
                raise PipelineError("the job of this run was deleted")
            if not job.destinations:
                raise PipelineError("the job has no destination")
            plan = _plan(runtime, run, job)
        recorder.log("info", f"run {run_id} of job {job.name!r} started")
        edges.announce_start(plan.started_at)
        edges.run_pre_hook(stopping)
        recorder.check_stop()
        result = run_backup(plan, recorder)
        outcome = edges.with_pre_problem(from_result(result))
        values = {
            "archive_name": result.archive_name,
            "bytes_read": result.bytes_read,
            "bytes_written": result.size,
            "files_done": result.files,
            "sha256": result.sha256,
            "current_file": None,
        }
    except Exception as error:  # noqa: BLE001 - every failure becomes a recorded status
        outcome = from_exception(error)
        if outcome.status is RunStatus.FAILED:
            logger.warning(
                "run %s failed: %s", run_id, outcome.error, exc_info=is_unexpected(error)
            )
    level = "info" if outcome.status is RunStatus.SUCCESS else "error"
    suffix = f": {outcome.error}" if outcome.error else ""
    recorder.log(level, f"finished: {outcome.status.value}{suffix}")
    with runtime.sessions.begin() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status=outcome.status.value,
                error=outcome.error,
                finished_at=datetime.now(UTC),
                **values,
            )
        )
    if edges is not None:
        outcome = edges.finish(outcome, stopping)
    return outcome
