"""Every way a run can end, mapped to a status and a message in one place."""

from __future__ import annotations

from dataclasses import dataclass

from mackuper.destinations.base import DestinationError
from mackuper.models import RunStatus
from mackuper.pipeline.errors import Cancelled, Interrupted, PipelineError
from mackuper.pipeline.run import BackupResult
from mackuper.restore.errors import RestoreError
from mackuper.sources.base import SourceError
from mackuper.ssh import SSHError


@dataclass(frozen=True)
class Outcome:
    status: RunStatus
    error: str | None


def from_result(result: BackupResult) -> Outcome:
    if result.failed_destinations:
        count = len(result.failed_destinations)
        return Outcome(
            RunStatus.WARNING,
            f"{count} destination(s) failed: " + "; ".join(result.failed_destinations.values()),
        )
    if result.problems:
        count = len(result.problems)
        return Outcome(RunStatus.WARNING, f"{count} file(s) could not be backed up; see the log")
    return Outcome(RunStatus.SUCCESS, None)


_EXPECTED = (
    SourceError,
    SSHError,
    DestinationError,
    PipelineError,
    RestoreError,
    OSError,
    MemoryError,
)


def is_unexpected(error: BaseException) -> bool:
    """Whether `error` is a bug worth a traceback in the server log."""
    return not isinstance(error, _EXPECTED)


def from_exception(error: BaseException) -> Outcome:
    """The status and user-facing message for an exception that ended a run."""
    if isinstance(error, Cancelled):
        return Outcome(RunStatus.CANCELLED, "cancelled by a user; nothing was published")
    if isinstance(error, Interrupted):
        return Outcome(RunStatus.INTERRUPTED, "the worker stopped; nothing was published")
    if isinstance(error, SourceError | SSHError | DestinationError | PipelineError | RestoreError):
        return Outcome(RunStatus.FAILED, str(error))
    if isinstance(error, MemoryError):
        return Outcome(RunStatus.FAILED, "out of memory")
    if isinstance(error, OSError):
        return Outcome(RunStatus.FAILED, f"system error: {error.strerror or error}")
    return Outcome(RunStatus.FAILED, f"internal error ({type(error).__name__}); see the server log")
