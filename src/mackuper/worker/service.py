"""The worker loop: heartbeat, recovery, schedule ticks and claiming.

What a tick queues and how a claimed run goes, whatever its kind, live in
`mackuper.runs` (enqueue, lifecycle). Safety does not depend on there being one
worker: a run is claimed with a conditional UPDATE (exactly one row changes, or
another worker has it) and a schedule tick becomes a run through a unique
(job, tick) row.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import cast

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mackuper import installation
from mackuper.core.labels import host_label
from mackuper.db import changed_rows
from mackuper.destinations import registry as destinations
from mackuper.destinations.base import DestinationError
from mackuper.models import (
    Artifact,
    ArtifactState,
    Destination,
    Run,
    RunLog,
    RunStatus,
    Setting,
    WorkerHeartbeat,
)
from mackuper.runs import enqueue, lifecycle, queue, quiesce, retention
from mackuper.runs.lifecycle import announce_interrupted
from mackuper.runs.outcome import Outcome
from mackuper.runs.wake import WakeListener
from mackuper.runtime import Runtime

logger = logging.getLogger(__name__)

HEARTBEAT_STALE = timedelta(seconds=30)
RECOVER_EVERY_POLLS = 10
"""Recovery (dead workers' runs and uploads) runs once per this many poll intervals."""
POOL_THREADS = installation.CONCURRENCY_RANGE[1]
"""Threads are started on demand; the limit in force is the concurrency setting."""

PRELOAD = "MACKUPER_WORKER_PRELOAD"
"""Set by a worker for the image that replaces it (`for_successor`): the packages to import
before measuring where it starts."""

Clock = Callable[[], datetime]
Execute = Callable[[Runtime, int, threading.Event], Outcome]
system_clock = lifecycle.system_clock


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim(3), or None where the C library has none (musl)."""
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return cast("Callable[[int], int]", function)


_trim = _malloc_trim()


def loaded_packages() -> set[str]:
    """The top-level packages and modules imported in this process."""
    return {name.partition(".")[0] for name in list(sys.modules) if not name.startswith("_")}


def preload(names: str) -> None:
    """Import the comma-separated packages a previous image of this worker had loaded."""
    for name in filter(None, names.split(",")):
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - a hint only: the run imports what it needs
            logger.debug("could not preload %s: %s", name, error)


def resident_bytes() -> int | None:
    """This process's resident set size (Linux's /proc/self/statm), or None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def return_free_memory() -> None:
    """Give the memory a finished run freed back to the system.

    A run's threads (pipeline stages, compressor pools) each get a glibc malloc arena;
    what they free stays mapped in it, so without this an idle worker kept ~100 MiB
    after a 1 GiB backup, and the next run's peak started from there. Measured on the
    1 GiB bench corpus, tar.zst three times in one process: resident after each run
    96-114 MiB without, 82-83 MiB with; peaks 141 MiB without, 134-135 MiB with.
    """
    if _trim is not None:
        _trim(0)


class Worker:
    """One worker process's loop; `clock` is injectable so tests drive time."""

    def __init__(
        self,
        runtime: Runtime,
        worker_id: str | None = None,
        clock: Clock = system_clock,
        execute: Execute | None = None,
        recycle_mib: int = 0,
    ) -> None:
        self.runtime = runtime
        self.hostname = socket.gethostname()
        self.worker_id = worker_id or f"{self.hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.labels = runtime.settings.worker_labels or (host_label(self.hostname),)
        self.stopping = threading.Event()
        self.wake = threading.Event()
        """Set when a run is queued elsewhere, one of ours ends, or we stop: look now."""
        self.listener = WakeListener(runtime.engine, self.wake)
        self.clock = clock
        self.execute: Execute = execute or self._execute
        self.limit = runtime.settings.max_concurrent_runs
        self.pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="run")
        self.active: dict[int, Future[object]] = {}
        self.recycle_above = recycle_mib << 20
        """`run_forever` ends, to be started again, once idle and this many bytes above
        `baseline` (0: never); see `grown`."""
        self.baseline: int | None = None
        self.signalled = False
        """A stop signal came (set by the handler): never start afresh then."""
        self.packages_at_start = loaded_packages()

    # --- lifecycle -------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %s: stopping; running backups are aborted", signum)
            self.signalled = True
            self.stopping.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run_forever(self) -> bool:
        """Work until stopped; True when it stopped to be started afresh (`grown`)."""
        logger.info("worker %s started, labels %s", self.worker_id, ", ".join(self.labels))
        installation.remember_timezone(self.runtime.sessions)
        self.heartbeat()
        self.recover()
        self.listener.start()
        self.warm_up()
        self.baseline = resident_bytes()
        recycle = False
        poll = self.runtime.settings.worker_poll_seconds
        recovered_at = time.monotonic()
        while not self.stopping.is_set():
            # Cleared before the step: a wake-up during it makes the next wait return at once.
            self.wake.clear()
            due = time.monotonic() - recovered_at >= poll * RECOVER_EVERY_POLLS
            try:
                self.step(recover=due)
            except Exception:
                logger.exception("worker step failed; retrying")
            if due:
                recovered_at = time.monotonic()
            if self.grown():
                recycle = True
                break
            self.wake.wait(poll)
        self.shutdown()
        return recycle

    def warm_up(self) -> None:
        """Load what the runs will load anyway before `baseline` is measured: the packages
        an earlier image of this worker loaded (`for_successor`), and what the installation's
        destinations need on first use (an S3 client's service data, ~12 MiB). Otherwise
        that one-time growth counts towards `grown`: a worker writing to S3 started
        afresh after every run, however small, and its successor loaded it all again."""
        preload(os.environ.pop(PRELOAD, ""))
        try:
            with self.runtime.sessions() as session:
                kinds = set(session.scalars(select(Destination.kind).distinct()))
            destinations.warm_up(kinds)
        except Exception:  # noqa: BLE001 - a warm-up only: the runs load what they need
            logger.warning("could not load the destinations' libraries ahead", exc_info=True)

    def grown(self) -> bool:
        """Idle, and resident memory more than `recycle_above` over what it was at start.

        What a backup frees is not all given back to the system, even after
        `return_free_memory`: CPython's small-object allocator returns a 1 MiB arena
        only once every object in it is gone, and a few objects that live on (SQLAlchemy's
        statement cache, log records) end up beside the thousands of manifest entries a
        run frees. Measured through `mackuper serve` on the 1 GiB bench corpus: 32
        arenas at start, 48 after the first run, while live Python objects grew by
        1.2 MB; resident memory 76 MiB at start, 104-109 MiB between runs, and each
        later run peaked ~30 MiB higher than the first (151 against 125 MiB). A worker
        started again comes back at its start's size, the way Celery's
        `--max-memory-per-child` and gunicorn's `max_requests` recycle workers.

        At 64 MiB the 1 GiB case ran on, and a worker alternating tar.zst and tar.gz
        crept up to 154 MiB by its fifth run (goal 150); at the default 16 every such
        run stays at 110-130 MiB and takes ~0.2 s longer, being a fresh process's first
        (bench.service, docs/benchmarks.md).
        """
        if not self.recycle_above or self.baseline is None or self.stopping.is_set():
            return False
        if any(not future.done() for future in self.active.values()):
            return False
        now = resident_bytes()
        if now is None or now - self.baseline <= self.recycle_above:
            return False
        logger.info(
            "worker %s is idle at %d MiB resident, %d MiB more than when it started:"
            " starting afresh (MACKUPER_WORKER_RECYCLE_MIB=%d)",
            self.worker_id,
            now >> 20,
            (now - self.baseline) >> 20,
            self.recycle_above >> 20,
        )
        return True

    def for_successor(self) -> dict[str, str]:
        """What the image that replaces this one (`grown`) is to import before it measures
        where it starts (`warm_up`): the packages this one's runs loaded (boto3, the
        Docker SDK, paramiko: 7-13 MiB each)."""
        packages = sorted(loaded_packages() - self.packages_at_start)
        return {PRELOAD: ",".join(packages)} if packages else {}

    def step(self, recover: bool = False, now: datetime | None = None) -> None:
        now = now or self.clock()
        self.heartbeat()
        if recover:
            self.recover()
        enqueue.fire_due_ticks(self.runtime, now)
        enqueue.enqueue_due_verifications(self.runtime, now)
        self.claim_and_start()
        self.daily_maintenance(now)

    def shutdown(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self.runtime.sessions.begin() as session:
            session.execute(
                update(Run)
                .where(Run.worker_id == self.worker_id, Run.status == RunStatus.RUNNING.value)
                .values(status=RunStatus.INTERRUPTED.value, finished_at=datetime.now(UTC))
            )
            heartbeat = session.get(WorkerHeartbeat, self.worker_id)
            if heartbeat is not None:
                session.delete(heartbeat)
        logger.info("worker %s stopped", self.worker_id)

    def heartbeat(self) -> None:
        now = datetime.now(UTC)
        with self.runtime.sessions.begin() as session:
            beat = session.get(WorkerHeartbeat, self.worker_id)
            if beat is None:
                session.add(
                    WorkerHeartbeat(
                        worker_id=self.worker_id,
                        hostname=self.hostname,
                        pid=os.getpid(),
                        labels=list(self.labels),
                        started_at=now,
                        seen_at=now,
                    )
                )
            else:
                beat.seen_at = now

    # --- recovery --------------------------------------------------------

    def _is_dead(self, worker_id: str | None, beats: dict[str, WorkerHeartbeat]) -> bool:
        if worker_id is None or worker_id == self.worker_id:
            return False
        cli = lifecycle.cli_process(worker_id)
        if cli is not None:
            # The command sends no heartbeat; on another host it cannot be asked.
            host, pid = cli
            return host != self.hostname or not _process_lives(pid)
        beat = beats.get(worker_id)
        if beat is None or datetime.now(UTC) - beat.seen_at > HEARTBEAT_STALE:
            return True
        return beat.hostname == self.hostname and not _process_lives(beat.pid)

    def recover(self) -> None:
        """Mark runs of dead workers interrupted, abort their unfinished uploads and start
        the containers their backups stopped."""
        with self.runtime.sessions() as session:
            beats = {beat.worker_id: beat for beat in session.scalars(select(WorkerHeartbeat))}
            orphans = [
                run
                for run in session.scalars(select(Run).where(Run.status == RunStatus.RUNNING.value))
                if self._is_dead(run.worker_id, beats)
            ]
            interrupted: list[int] = []
            for run in orphans:
                changed = changed_rows(
                    session.execute(
                        update(Run)
                        .where(Run.id == run.id, Run.status == RunStatus.RUNNING.value)
                        .values(
                            status=RunStatus.INTERRUPTED.value,
                            finished_at=datetime.now(UTC),
                            error="the worker running this backup stopped; nothing was published",
                        )
                    )
                )
                if changed:
                    interrupted.append(run.id)
                    session.add(
                        RunLog(
                            run_id=run.id,
                            level="error",
                            message=f"interrupted: worker {run.worker_id} stopped unexpectedly",
                        )
                    )
            # Runs that ended but never finished their post-phase (`Run.settling`): their
            # worker died in it, or (ours) could not write that it was over. Their job's
            # next run would wait for them for ever.
            for run in session.scalars(select(Run).where(Run.settling)):
                future = self.active.get(run.id)
                ours_and_over = run.worker_id == self.worker_id and (
                    future is None or future.done()
                )
                if ours_and_over or self._is_dead(run.worker_id, beats):
                    run.settling = False
            session.commit()
            for run_id in interrupted:
                announce_interrupted(self.runtime, run_id)
            for worker_id, beat in beats.items():
                if self._is_dead(worker_id, beats):
                    session.delete(beat)
            session.commit()
            self.abort_orphaned_uploads(session)
        # Containers a dead worker's backup stopped run again (their runs are over now).
        quiesce.restart_left_stopped(self.runtime)

    def abort_orphaned_uploads(self, session: Session) -> None:
        pending = session.scalars(
            select(Artifact)
            .join(Run, Run.id == Artifact.run_id)
            .where(
                Artifact.state == ArtifactState.PENDING.value,
                Run.status != RunStatus.RUNNING.value,
                Run.status != RunStatus.QUEUED.value,
            )
        ).all()
        for artifact in pending:
            if artifact.upload_id:
                try:
                    destination = destinations.build(
                        artifact.destination.kind,
                        artifact.destination.config,
                        self.runtime.secrets.decrypt(artifact.destination.secrets_encrypted),
                    )
                    destination.abort_upload(artifact.key, artifact.upload_id)
                except DestinationError as error:
                    logger.warning("could not abort upload of %s: %s", artifact.key, error)
                    continue
            artifact.state = ArtifactState.DELETED.value
            artifact.deleted_at = datetime.now(UTC)
            artifact.upload_id = None
            session.add(
                RunLog(
                    run_id=artifact.run_id,
                    level="info",
                    message=f"aborted the unfinished upload of {artifact.key}",
                )
            )
        session.commit()

    # --- claiming --------------------------------------------------------

    def claim_and_start(self) -> None:
        """Start queued runs of each lane (`runs.queue`) while its slots allow."""
        self.active = {run_id: f for run_id, f in self.active.items() if not f.done()}
        if self.stopping.is_set():
            return
        with self.runtime.sessions() as session:
            limit = installation.max_concurrent_runs(session, self.limit)
            for lane in queue.CLAIM_ORDER:
                # Counted over every worker: the limit is the installation's, not this process's.
                free = lane.slots(limit) - queue.running_count(session, lane)
                if free <= 0:
                    continue
                for run_id in queue.next_runs(session, lane, self.labels, free * 4):
                    if free <= 0:
                        break
                    if self.claim(session, run_id):
                        future: Future[object] = self.pool.submit(self.run, run_id)
                        # A slot frees when it ends: the next queued run need not wait a poll.
                        future.add_done_callback(lambda _done: self.wake.set())
                        self.active[run_id] = future
                        free -= 1

    def claim(self, session: Session, run_id: int) -> bool:
        """Take a queued run; False when another worker has it, its job is running or it
        waits for a label this worker does not carry."""
        claimed = lifecycle.claim(session, run_id, self.worker_id, self.labels)
        return claimed is lifecycle.Claim.CLAIMED

    # --- once a day ---------------------------------------------------------

    def run(self, run_id: int) -> Outcome:
        return self.execute(self.runtime, run_id, self.stopping)

    def _execute(self, runtime: Runtime, run_id: int, stopping: threading.Event) -> Outcome:
        try:
            return lifecycle.execute_run(runtime, run_id, stopping, self.clock)
        finally:
            return_free_memory()

    def daily_maintenance(self, now: datetime) -> None:
        """Once a UTC day, by one worker: retention for every job and history cleanup."""
        today = now.astimezone(UTC).date().isoformat()
        with self.runtime.sessions() as session:
            last = installation.read(session, installation.RETENTION_SWEPT)
            if last is not None and last >= today:
                return
            if last is None:
                session.add(Setting(key=installation.RETENTION_SWEPT, value=today))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    return
            else:
                taken = changed_rows(
                    session.execute(
                        update(Setting)
                        .where(Setting.key == installation.RETENTION_SWEPT, Setting.value == last)
                        .values(value=today)
                    )
                )
                session.commit()
                if not taken:
                    return
            days = installation.history_keep_days(session)
            if days is not None:
                removed = retention.clean_history(session, now, days)
                session.commit()
                if removed:
                    logger.info("history cleanup removed %s runs older than %s days", removed, days)
            retention.refresh_statistics(session)
            session.commit()
        deleted = retention.apply_all(self.runtime.sessions, self.runtime.secrets, now)
        if deleted:
            logger.info("daily retention deleted %s archives", deleted)


def _process_lives(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it lives
    return True
