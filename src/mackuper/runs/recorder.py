"""Records a run as it goes: log lines, throttled progress, artifacts, cancel checks.

The database may go away for a moment in the middle of a run (PostgreSQL restarted,
a fail-over): every write and read here, and the lifecycle's final record through
`retrying`, is tried again on a new connection (pool_pre_ping drops the dead ones)
with the outage backoff, for up to MACKUPER_RETRY_SECONDS, so the backup waits
instead of failing, and its final status is still recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Update, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mackuper.core.naming import ENCRYPTED_SUFFIX
from mackuper.core.outage import Outage
from mackuper.models import Artifact, ArtifactState, Run, RunLog, hash_columns
from mackuper.pipeline.errors import ArchiveNameTaken, Cancelled, Interrupted

LOG_MESSAGE_LIMIT = 4000
logger = logging.getLogger(__name__)
T = TypeVar("T")


def _is_live_key_conflict(error: IntegrityError) -> bool:
    """Whether the unique live-key index refused the insert (SQLite or PostgreSQL words)."""
    text = str(error.orig)
    return "uq_artifacts_live_key" in text or "artifacts.destination_id, artifacts.key" in text


class RunRecorder:
    """The pipeline's `RunHooks`, writing to the database with its own session."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        run_id: int,
        stopping: threading.Event,
        retry_seconds: float = 0.0,
        interval: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.stopping = stopping
        self.interval = interval
        self._last_report = 0.0
        self.retry_seconds = retry_seconds
        """MACKUPER_RETRY_SECONDS for a run (execute_run); 0 elsewhere."""

    def retrying(self, work: Callable[[], T]) -> T:
        """`work()`, tried again while the database cannot be reached, for up to
        `retry_seconds` (or until the worker stops); then its error is raised."""
        outage = Outage(self.retry_seconds, self.stopping)
        while True:
            try:
                return work()
            except (OperationalError, InterfaceError) as error:
                if outage.attempts == 0:
                    logger.warning("run %s: database unavailable, retrying: %s", self.run_id, error)
                if not outage.pause():
                    raise

    def log(self, level: str, message: str) -> None:
        def write() -> None:
            with self.sessions.begin() as session:
                session.add(
                    RunLog(run_id=self.run_id, level=level, message=message[:LOG_MESSAGE_LIMIT])
                )

        self.retrying(write)

    def check_stop(self) -> None:
        if self.stopping.is_set():
            raise Interrupted("the worker is shutting down")

        def read() -> bool | None:
            with self.sessions() as session:
                return session.scalar(select(Run.cancel_requested).where(Run.id == self.run_id))

        if self.retrying(read):
            raise Cancelled("cancelled by a user")

    def progress(
        self, *, bytes_read: int, bytes_written: int, files_done: int, current: str
    ) -> None:
        if self.stopping.is_set():
            raise Interrupted("the worker is shutting down")
        now = time.monotonic()
        if now - self._last_report < self.interval:
            return
        self._last_report = now
        self._update(
            update(Run)
            .where(Run.id == self.run_id)
            .values(
                bytes_read=bytes_read,
                bytes_written=bytes_written,
                files_done=files_done,
                current_file=current[:1000],
            )
        )
        self.check_stop()

    def _update(self, statement: Update) -> None:
        def write() -> None:
            with self.sessions.begin() as session:
                session.execute(statement)

        self.retrying(write)

    def artifact_opened(self, destination_id: int, key: str) -> int:
        """The new artifact's id; raises ArchiveNameTaken when another run holds `key`.

        The partial unique index `uq_artifacts_live_key` decides, atomically across
        workers: on PostgreSQL a second insert of the same key waits for the first
        transaction and then fails.
        """

        def insert() -> int:
            with self.sessions.begin() as session:
                run = session.get_one(Run, self.run_id)
                artifact = Artifact(
                    run_id=self.run_id,
                    job_id=run.job_id,
                    destination_id=destination_id,
                    key=key,
                    encrypted=key.endswith(ENCRYPTED_SUFFIX),
                )
                session.add(artifact)
                session.flush()
                return artifact.id

        try:
            return self.retrying(insert)
        except IntegrityError as error:
            if not _is_live_key_conflict(error):
                raise
            raise ArchiveNameTaken(f"{key} belongs to another run") from None

    def artifact_upload_started(self, artifact_id: int, upload_id: str) -> None:
        self._update(update(Artifact).where(Artifact.id == artifact_id).values(upload_id=upload_id))

    def artifact_stored(self, artifact_id: int, size: int, archive_hash: tuple[str, str]) -> None:
        self._update(
            update(Artifact)
            .where(Artifact.id == artifact_id)
            .values(
                state=ArtifactState.STORED.value,
                size=size,
                upload_id=None,
                **hash_columns(archive_hash),
            )
        )

    def artifact_discarded(self, artifact_id: int) -> None:
        self._update(
            update(Artifact)
            .where(Artifact.id == artifact_id, Artifact.state == ArtifactState.PENDING.value)
            .values(state=ArtifactState.DELETED.value, deleted_at=datetime.now(UTC), upload_id=None)
        )
