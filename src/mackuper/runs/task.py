"""The one small protocol every kind of run implements, and what it is handed.

The lifecycle (`lifecycle.py`) owns everything around a kind: claiming, alerts,
commands, recording and mapping exceptions to a status. A kind only says how to
get ready (`prepare`, reading the database) and how to do the work (`execute`),
and optionally what follows a recorded outcome (`after`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from mackuper.models import Job, Run, RunKind
from mackuper.runs.outcome import Outcome
from mackuper.runs.recorder import RunRecorder
from mackuper.runtime import Runtime

Clock = Callable[[], datetime]
Work = TypeVar("Work")


@dataclass(frozen=True)
class RunContext:
    """What every kind may use while it runs."""

    runtime: Runtime
    run_id: int
    recorder: RunRecorder
    stopping: threading.Event
    clock: Clock


@dataclass
class Finished:
    """How the work ended: its outcome, the run columns to store, and kind-specific results."""

    outcome: Outcome
    values: dict[str, object] = field(default_factory=dict)
    """Run columns (archive_name, bytes_read, bytes_written, files_done, the archive's hash:
    models.hash_columns)."""
    results: dict[str, Any] | None = None
    """Stored in the run's details under "results" (a restore's counts, a verify's report)."""


class Task(Protocol[Work]):
    """One kind of run."""

    kind: RunKind
    title: str
    """How alerts name it: "Backup", "Restore", "Verification"."""
    abandoned: str
    """What a failed pre command that aborts means: "nothing was backed up"."""
    pings: bool
    """Whether the job's dead-man pings hear about it (they watch backups only)."""

    def prepare(self, context: RunContext, session: Session, run: Run, job: Job | None) -> Work:
        """Read and check what the work needs; raises when the run cannot start."""
        ...

    def execute(self, context: RunContext, work: Work) -> Finished:
        """Do the work; raises on failure (the lifecycle maps the exception to a status)."""
        ...

    def after(self, context: RunContext, outcome: Outcome) -> None:
        """Follow-up once the outcome is recorded and announced; must not raise."""
        ...
