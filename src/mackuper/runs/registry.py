"""Every kind of run, by name: a new kind is one module and one line here."""

from __future__ import annotations

from typing import Any

from mackuper.models import RunKind
from mackuper.runs.backup import BackupTask
from mackuper.runs.restore import RestoreTask
from mackuper.runs.task import Task
from mackuper.runs.verify import VerifyTask

TASKS: dict[RunKind, Task[Any]] = {
    RunKind.BACKUP: BackupTask(),
    RunKind.RESTORE: RestoreTask(),
    RunKind.VERIFY: VerifyTask(),
}
