"""The run's edges: start alert, pre command, post command, outcome alerts.

The lifecycle calls these around every kind's work. None of them raises except
`run_pre_command` (HookError when the pre command fails and its policy is abort);
alerts are bounded in time and their failures only reach the run log.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import update

from mackuper.models import Job, Run, RunStatus
from mackuper.notify import settings as alert_settings
from mackuper.notify.dispatch import RunNotifier
from mackuper.notify.message import RunEvent, event_for_status, run_url
from mackuper.runs import commands
from mackuper.runs.outcome import Outcome
from mackuper.runs.recorder import RunRecorder
from mackuper.runs.task import Task
from mackuper.runtime import Runtime

logger = logging.getLogger(__name__)


@dataclass
class RunEdges:
    """What a run needs to announce itself and run its commands."""

    runtime: Runtime
    recorder: RunRecorder
    run_id: int
    kind: str
    title: str
    abandoned: str
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
    def load(
        cls, runtime: Runtime, recorder: RunRecorder, run: Run, job: Job | None, task: Task[Any]
    ) -> RunEdges:
        """Read the job's alert and command settings; a bad stored secret only loses alerts."""
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
            kind=task.kind.value,
            title=task.title,
            abandoned=task.abandoned,
            job_id=run.job_id,
            job_name=run.job_name,
            job_slug=job.slug if job else "",
            url=run_url(runtime.settings.public_url, run.id),
            notifier=RunNotifier(runtime, alerts, recorder.log, pings=task.pings),
            pre=commands.load(job.hooks or {}, "pre") if job else None,
            post=commands.load(job.hooks or {}, "post") if job else None,
        )

    def _environment(self, hook: str, extra: dict[str, object] | None = None) -> dict[str, str]:
        values: dict[str, object] = {
            "hook": hook,
            "kind": self.kind,
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
                action=self.title,
                job_name=self.job_name,
                run_id=self.run_id,
                status=RunStatus.RUNNING.value,
                run_url=self.url,
                started_at=started_at,
            )
        )

    def run_pre_command(self, stopping: threading.Event) -> None:
        """Run the pre command; raises HookError when it fails and must abort the run."""
        if self.pre is None:
            return
        result = commands.run_hook(
            self.pre,
            self._environment("pre"),
            self.recorder.log,
            cwd=str(self.runtime.settings.temp_dir),
            stopping=stopping,
            action=self.kind,
        )
        if result.ok:
            return
        if self.pre.on_failure == "abort":
            raise commands.HookError(
                f"the pre-{self.kind} command {result.problem}; {self.abandoned}"
            )
        self.pre_problem = f"the pre-{self.kind} command {result.problem}"

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
            outcome = self._run_post_command(outcome, stopping)
            self.announce_end(outcome)
        except Exception:  # noqa: BLE001 - the outcome is stored; its edges must not undo that
            logger.exception("run %s: post command or alerts failed", self.run_id)
            self.recorder.log("warning", "post command or alerts failed; see the server log")
        return outcome

    def _run_row(self) -> Run:
        with self.runtime.sessions() as session:
            return session.get_one(Run, self.run_id)

    def _run_post_command(self, outcome: Outcome, stopping: threading.Event) -> Outcome:
        if self.post is None:
            return outcome
        run = self._run_row()
        extra: dict[str, object] = {
            "status": outcome.status.value,
            "error": outcome.error,
            "archive": run.archive_name,
            "size": run.bytes_written,
            "files": run.files_done,
            "sha256": run.sha256,  # MACKUPER_SHA256: only of archives stored before 2026-12-02
            "blake3": run.blake3,  # MACKUPER_BLAKE3: the archive's hash (b3sum)
            "duration": f"{run.duration_seconds:.1f}" if run.duration_seconds is not None else "",
        }
        result = commands.run_hook(
            self.post,
            self._environment("post", extra),
            self.recorder.log,
            cwd=str(self.runtime.settings.temp_dir),
            stopping=stopping,
            action=self.kind,
        )
        if result.ok:
            return outcome
        problem = f"the post-{self.kind} command {result.problem}"
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
                action=self.title,
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
