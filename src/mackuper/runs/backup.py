"""The backup kind: build the plan from the job, run the pipeline, then apply retention."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mackuper import installation
from mackuper.core import anomaly
from mackuper.destinations import registry as destinations
from mackuper.destinations.base import Destination, Lockable
from mackuper.encryption import backup_recipients
from mackuper.models import Job, Run, RunKind, RunStatus, hash_columns
from mackuper.pipeline.errors import PipelineError
from mackuper.pipeline.run import BackupPlan, BackupResult, run_backup
from mackuper.runs import chain, quiesce, retention, source_count
from mackuper.runs.outcome import Outcome, from_result
from mackuper.runs.task import Finished, RunContext
from mackuper.sources import engine
from mackuper.sources import registry as sources
from mackuper.sources.ssh import SSHSource

logger = logging.getLogger(__name__)


def _judge(context: RunContext, job_id: int, fingerprint: anomaly.Fingerprint) -> list[str]:
    """The anomalies of this backup against the job's recent ones; when there are any,
    the job waits for a person before retention deletes anything."""
    with context.runtime.sessions() as session:
        earlier = session.scalars(
            select(Run.details)
            .where(
                Run.job_id == job_id,
                Run.kind == RunKind.BACKUP,
                Run.id != context.run_id,
                Run.status.in_([RunStatus.SUCCESS.value, RunStatus.WARNING.value]),
            )
            .order_by(Run.id.desc())
            .limit(4 * anomaly.HISTORY)
        ).all()
    history: list[anomaly.Fingerprint] = []
    for details in earlier:
        results = (details or {}).get("results") or {}
        found = anomaly.Fingerprint.from_json(results.get("fingerprint") or {})
        if found is not None:
            history.append(found)
        if results.get("anomalies") or len(history) == anomaly.HISTORY:
            break  # an anomalous backup is the new baseline: the job waits for a person anyway
    said = anomaly.findings(fingerprint, history)
    if said:
        with context.runtime.sessions.begin() as session:
            session.execute(
                update(Job).where(Job.id == job_id).values(anomaly_run_id=context.run_id)
            )
    return said


class BackupTask:
    kind = RunKind.BACKUP
    title = "Backup"
    abandoned = "nothing was backed up"
    pings = True

    def prepare(
        self, context: RunContext, session: Session, run: Run, job: Job | None
    ) -> BackupPlan:
        """The pipeline's plan; PipelineError when the job is gone or has no destination."""
        if job is None:
            raise PipelineError("the job of this run was deleted")
        if not job.destinations:
            raise PipelineError("the job has no destination")
        secrets = context.runtime.secrets
        built: dict[int, Destination] = {}
        started = run.started_at or datetime.now(UTC)
        for destination in job.destinations:
            target = destinations.build(
                destination.kind,
                destination.config,
                secrets.decrypt(destination.secrets_encrypted),
                context.runtime.settings.retry_seconds,
            )
            if isinstance(target, Lockable) and target.lock_mode:
                target.retain_until = retention.first_lock(
                    session, job, destination, run.id, started
                )
            built[destination.id] = target
        plan_chain = chain.plan_chain(
            session, job, started, chain.DestinationStorage(context.runtime, job, built)
        )
        try:
            source = sources.build(
                job.source_kind,
                job.source_config,
                secrets.decrypt(job.source_secrets_encrypted),
                context.runtime.settings.retry_seconds,
                engine=(
                    engine.address(installation.container_engine(session)),
                    installation.container_helper_image(session),
                ),
            )
            if plan_chain is not None and plan_chain.remote and isinstance(source, SSHSource):
                source.snapshot = plan_chain.snapshot  # the remote GNU tar's (core/snar.py)
            return BackupPlan(
                chain=plan_chain,
                job_id=job.id,
                job_slug=job.slug,
                job_name=job.name,
                run_id=run.id,
                archive_format=job.archive_format,
                compression_level=job.compression_level,
                source=source,
                destinations=built,
                started_at=started,
                encryption=backup_recipients(
                    job.encryption or {}, secrets.decrypt(job.encryption_secrets_encrypted)
                ),
            )
        except BaseException:
            if plan_chain is not None:
                plan_chain.close()  # its previous point's temporary database
            raise

    def execute(self, context: RunContext, work: BackupPlan) -> Finished:
        try:
            return self._execute(context, work)
        finally:
            if work.chain is not None:
                work.chain.close()  # whatever stopped it (closed already after the pipeline)

    def _execute(self, context: RunContext, work: BackupPlan) -> Finished:
        # Beside the backup, a quick count of the source: a first run's percentage.
        done = threading.Event()
        source_count.start(context.runtime.sessions, context.run_id, work.source, done)
        if work.chain is not None:
            context.recorder.log("info", work.chain.reason)
        result: BackupResult | None = None
        try:
            # Containers the job stops (by name or label) are down only around the pipeline.
            with quiesce.containers_stopped(
                context.runtime, context.run_id, work.job_id, context.recorder
            ) as quiet:
                result = run_backup(work, context.recorder)
        except BaseException:
            if result is not None:
                result.entries.close()  # the containers could not be started again
            raise
        finally:
            done.set()
            if work.chain is not None:
                work.chain.close()  # the previous point: compared with, no longer needed
        with result.entries:  # a spool (pipeline/filelist.py), read here twice at most
            if work.chain is not None and result.chain is not None:
                with context.runtime.sessions.begin() as session:
                    chain.record_point(
                        session,
                        work.job_id,
                        context.run_id,
                        work.chain,
                        result.chain,
                        result.entries,
                        result.snapshot,
                    )
            point = result.chain is not None and result.chain.get("level", 0) > 0
            fingerprint = anomaly.Fingerprint.of(
                result.entries, result.bytes_read, result.size, point=point
            )
        values: dict[str, object] = {
            "archive_name": result.archive_name,
            "bytes_read": result.bytes_read,
            "bytes_written": result.size,
            "files_done": result.files,
            **hash_columns(result.archive_hash),
        }
        outcome = from_result(result)
        found = _judge(context, work.job_id, fingerprint)
        results: dict[str, object] = {"fingerprint": fingerprint.to_json()}
        if quiet.stopped:
            results["containers"] = quiet.summary()
            results["containers_down_seconds"] = quiet.total_seconds
        if quiet.problems and outcome.status is RunStatus.SUCCESS:
            outcome = Outcome(RunStatus.WARNING, "stopped containers: " + "; ".join(quiet.problems))
        if found:
            results["anomalies"] = found
            for finding in found:
                context.recorder.log("warning", f"anomaly: {finding}")
            said = (
                "this backup does not look like the job's recent ones (" + "; ".join(found) + ")"
                ": retention deletes nothing for this job until someone acknowledges it"
            )
            error = f"{outcome.error}; {said}" if outcome.error else said
            outcome = Outcome(RunStatus.WARNING, error)
        return Finished(outcome, values, results)

    def after(self, context: RunContext, outcome: Outcome) -> None:
        """After a good backup, apply its job's retention (it counts this run as stored)."""
        if outcome.status not in {RunStatus.SUCCESS, RunStatus.WARNING}:
            return
        try:
            with context.runtime.sessions() as session:
                job_id = session.get_one(Run, context.run_id).job_id
            if job_id is not None:
                retention.apply_retention(
                    context.runtime.sessions,
                    context.runtime.secrets,
                    job_id,
                    context.clock(),
                    context.run_id,
                )
        except Exception:
            logger.exception("retention after run %s failed", context.run_id)
