"""A quick count of a backup's source, beside the backup itself, so that a job's first
run (with no earlier run to compare with) shows a percentage and an ETA.

Only local sources are counted: walking a tree's metadata is cheap next to reading its
bytes (the same `scandir` + `lstat` walk the backup does, without opening a file). A
remote source would cost a second SSH session; its first run shows bytes and rate only.
The total lands in the run's details as `source_total`; /api/ui/runs/<id>/estimate
prefers it to the previous run's size.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mackuper.models import Run, RunStatus
from mackuper.sources.base import EntryType, Source, SourceError
from mackuper.sources.local import LocalSource

logger = logging.getLogger(__name__)


class _Quiet:
    """Drops messages: the backup itself logs every unreadable file once."""

    def problem(self, message: str) -> None:
        return None

    def note(self, message: str) -> None:
        return None


def count_local(source: LocalSource, stop: threading.Event) -> tuple[int, int] | None:
    """(bytes, files) of the regular files the backup will read; None when stopped
    first or when a source path is missing (the backup reports that)."""
    size = files = 0
    try:
        for entry in source.iter_entries(_Quiet()):
            if stop.is_set():
                return None
            if entry.type is EntryType.FILE:
                size += entry.size
                files += 1
    except SourceError:
        return None
    return size, files


def store(sessions: sessionmaker[Session], run_id: int, size: int, files: int) -> None:
    """Add `source_total` to a running run's details (a finished run is left alone)."""
    with sessions.begin() as session:
        details = session.scalar(select(Run.details).where(Run.id == run_id)) or {}
        session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.RUNNING)
            .values(details={**details, "source_total": {"bytes": size, "files": files}})
        )


def start(
    sessions: sessionmaker[Session], run_id: int, source: Source, stop: threading.Event
) -> threading.Thread | None:
    """Count `source` in a thread and store the total; None for sources not counted."""
    if not isinstance(source, LocalSource):
        return None

    def work() -> None:
        total = count_local(source, stop)
        if total is None or stop.is_set():
            return
        try:
            store(sessions, run_id, *total)
        except SQLAlchemyError as error:  # progress is a nicety; the backup goes on
            logger.warning("run %s: source total not stored: %s", run_id, error)

    thread = threading.Thread(target=work, name=f"count-run-{run_id}", daemon=True)
    thread.start()
    return thread
