"""The run's edges: start alert, pre command, post command, outcome alerts.

`execute.py` calls these around the pipeline. None of them raises except
`run_pre_hook` (HookError when the pre command fails and its policy is abort);
alerts are bounded in time and their failures only reach the run log.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography.fernet import InvalidToken
from sqlalchemy import update

from mackuper.models import Job, Run, RunStatus
from mackuper.notify import settings as alert_settings
from mackuper.notify.dispatch import RunNotifier
from mackuper.notify.message import RunEvent, event_for_status, run_url
from mackuper.runs import commands
from mackuper.runs.outcome import Outcome
from mackuper.runs.recorder import RunRecorder
from mackuper.runtime import Runtime

logger = logging.getLogger(__name__)


@dataclass
class RunEdges:
    """What a run needs to announce itself and run its commands."""

    runtime: Runtime
    recorder: RunRecorder
    run_id: int
    job_id: int | None
    job_name: str
    job_slug: str
    url: str
    notifier: RunNotifier
    pre: commands.Hook | None = None
    post: commands.Hook | None = None
    pre_problem: str | None = None

    # --- set up ------------------------------------------------------------

    @classmethod
    def load(cls, runtime: Runtime, recorder: RunRecorder, run: Run, job: Job | None) -> RunEdges:
        """Read the job's alert and hook settings; a bad stored secret only loses alerts."""
        alerts = None
        if job is not None:
            try:
                secrets = runtime.secrets.decrypt(job.notify_secrets_encrypted)
            except InvalidToken:
                recorder.log("warning", "the job's alert URLs cannot be decrypted; none are used")
                secrets = {}
            alerts = alert_settings.load(job.notifications or {}, secrets)
        return cls(
            runtime=runtime,
            recorder=recorder,
            run_id=run.id,
            job_id=run.job_id,
            job_name=run.job_name,
            job_slug=job.slug if job else "",
            url=run_url(runtime.settings.public_url, run.id),
            notifier=RunNotifier(runtime, alerts, recorder.log),
            pre=commands.load(job.hooks or {}, "pre") if job else None,
            post=commands.load(job.hooks or {}, "post") if job else None,
        )

    def _environment(self, hook: str, extra: dict[str, object] | None = None) -> dict[str, str]:
        values: dict[str, object] = {
            "hook": hook,
            "job_id": self.job_id,
            "job_name": self.job_name,
            "job_slug": self.job_slug,
            "run_id": self.run_id,
            "run_url": self.url,
            **(extra or {}),
        }
        return commands.hook_environment(values)

    # --- before the pipeline ---------------------------------------------

    def announce_start(self, started_at: datetime | None) -> None:
        self.notifier.started(
            RunEvent(
                event="start",
                job_name=self.job_name,
                run_id=self.run_id,
                status=RunStatus.RUNNING.value,
                run_url=self.url,
                started_at=started_at,
            )
        )

    def run_pre_hook(self, stopping: threading.Event) -> None:
        """Run the pre command; raises HookError when it fails and must abort the run."""
        if self.pre is None:
            return
        result = commands.run_hook(
            self.pre,
            self._environment("pre"),
            self.recorder.log,
            cwd=str(self.runtime.settings.temp_dir),
            stopping=stopping,
        )
        if result.ok:
            return
        if self.pre.on_failure == "abort":
            raise commands.HookError(
                f"the pre-backup command {result.problem}; nothing was backed up"
            )
        self.pre_problem = f"the pre-backup command {result.problem}"

    def with_pre_problem(self, outcome: Outcome) -> Outcome:
        """A success becomes a warning when a pre command with policy warn failed."""
        if self.pre_problem is None or outcome.status not in {RunStatus.SUCCESS, RunStatus.WARNING}:
            return outcome
        error = "; ".join(filter(None, [outcome.error, self.pre_problem]))
        return Outcome(RunStatus.WARNING, error)

    # --- after the outcome is stored --------------------------------------

    def finish(self, outcome: Outcome, stopping: threading.Event) -> Outcome:
        """Post command, then the outcome alerts and pings; returns the final outcome."""
        try:
            outcome = self._run_post_hook(outcome, stopping)
            self.announce_end(outcome)
        except Exception:  # noqa: BLE001 - the backup is stored; its edges must not undo that
            logger.exception("run %s: post command or alerts failed", self.run_id)
            self.recorder.log("warning", "post command or alerts failed; see the server log")
        return outcome

    def _run_row(self) -> Run:
        with self.runtime.sessions() as session:
            return session.get_one(Run, self.run_id)

    def _run_post_hook(self, outcome: Outcome, stopping: threading.Event) -> Outcome:
        if self.post is None:
            return outcome
        run = self._run_row()
        extra: dict[str, object] = {
            "status": outcome.status.value,
            "error": outcome.error,
            "archive": run.archive_name,
            "size": run.bytes_written,
            "files": run.files_done,
            "sha256": run.sha256,
            "duration": f"{run.duration_seconds:.1f}" if run.duration_seconds is not None else "",
        }
        result = commands.run_hook(
            self.post,
            self._environment("post", extra),
            self.recorder.log,
            cwd=str(self.runtime.settings.temp_dir),
            stopping=stopping,
        )
        if result.ok:
            return outcome
        problem = f"the post-backup command {result.problem}"
        if self.post.on_failure == "abort":
            changed = Outcome(RunStatus.FAILED, "; ".join(filter(None, [outcome.error, problem])))
        elif outcome.status is RunStatus.SUCCESS:
            changed = Outcome(RunStatus.WARNING, problem)
        else:
            changed = replace(outcome, error="; ".join(filter(None, [outcome.error, problem])))
        with self.runtime.sessions.begin() as session:
            session.execute(
                update(Run)
                .where(Run.id == self.run_id)
                .values(status=changed.status.value, error=changed.error)
            )
        return changed

    def announce_end(self, outcome: Outcome) -> None:
        event = event_for_status(outcome.status.value)
        if event is None:
            return
        run = self._run_row()
        began = run.bytes_read > 0 or run.files_done > 0
        self.notifier.finished(
            RunEvent(
                event=event,
                job_name=self.job_name,
                run_id=self.run_id,
                status=outcome.status.value,
                run_url=self.url,
                started_at=run.started_at,
                duration_seconds=run.duration_seconds,
                size=run.bytes_written or None,
                files=run.files_done or None,
                error=outcome.error,
                could_not_start=outcome.status is RunStatus.FAILED and not began,
            )
        )


def announce_interrupted(runtime: Runtime, run_id: int) -> None:
    """Alert, in the background, that a dead worker's run was marked interrupted."""

    def send() -> None:
        recorder = RunRecorder(runtime.sessions, run_id, threading.Event())
        try:
            with runtime.sessions() as session:
                run = session.get_one(Run, run_id)
                if run.kind != "backup":
                    return
                job = session.get(Job, run.job_id) if run.job_id is not None else None
                edges = RunEdges.load(runtime, recorder, run, job)
                outcome = Outcome(RunStatus(run.status), run.error)
            edges.announce_end(outcome)
        except Exception:  # noqa: BLE001 - recovery goes on whatever alerts do
            logger.exception("could not alert about interrupted run %s", run_id)

    threading.Thread(target=send, daemon=True, name="notify").start()
