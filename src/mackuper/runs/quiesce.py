"""Containers stopped while a backup runs, and always started again.

Which: the job's own list (`Job.options["stop_containers"]`, from the job form) and
every container labelled `mackuper.stop-during-backup=<job slug>`. Only containers
that are running are stopped, so only those are started again.

Order: Compose writes each service's dependencies into the label
`com.docker.compose.depends_on`; containers start after what they depend on
(core/start_order.py) and stop in the reverse order, so a proxy stops before its app
and the app before its database. Each start waits until the container is healthy
(or running, when it has no health check) before the next one starts.

Always started again: each container is written to `quiesced_containers` before it
is stopped and deleted once it runs again. A backup that fails or is cancelled starts
them on its way out (the context manager's exit); a worker that died leaves the rows,
and recovery at the next worker start (`restart_left_stopped`) starts them.

The run log names each stop and start with its downtime (from the stop request until
the container is ready again) and ends with the total: from the first stop until the
last container was ready.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mackuper import installation
from mackuper.core.start_order import start_order
from mackuper.models import Job, QuiescedContainer, Run, RunLog, RunStatus
from mackuper.runs.recorder import RunRecorder
from mackuper.runtime import Runtime
from mackuper.sources import engine
from mackuper.sources.engine import Container, EngineError

logger = logging.getLogger(__name__)

READY_TIMEOUT = 120.0
"""Seconds a started container may take to become healthy before the next one starts."""
STOP_TIMEOUT = 30
"""Seconds the engine gives a container to stop before it kills it."""


@dataclass
class Stopped:
    row_id: int
    container: Container
    stopped_at: float
    down_seconds: float | None = None


@dataclass
class Quiesce:
    """The containers one backup stopped, in start order; `problems` for the outcome."""

    stopped: list[Stopped] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    total_seconds: float | None = None

    def summary(self) -> list[dict[str, Any]]:
        """What the run's results keep: each container and its downtime."""
        return [
            {"name": item.container.name, "down_seconds": item.down_seconds}
            for item in self.stopped
        ]


def chosen(client: Any, slug: str, names: list[str]) -> list[Container]:
    """The job's containers to stop (by name or label) that are running, in start order.

    EngineError names a container of the job's list that does not exist.
    """
    every = engine.list_containers(client)
    by_name = {container.name: container for container in every}
    if missing := [name for name in names if name not in by_name]:
        raise EngineError(f"container {missing[0]} (to stop during the backup) does not exist")
    picked = {name: by_name[name] for name in names}
    for container in every:
        if container.labels.get(engine.STOP_LABEL, "").strip() == slug:
            picked[container.name] = container
    running = {name: item for name, item in picked.items() if item.status == "running"}
    # Dependencies are services of the same Compose project; keys are container names.
    service_names = {(item.project, item.service): name for name, item in running.items()}
    depends = {
        name: [
            service_names[(item.project, service)]
            for service in item.depends_on
            if (item.project, service) in service_names
        ]
        for name, item in running.items()
    }
    return [running[name] for name in start_order(depends)]


def _log(recorder: RunRecorder, level: str, message: str) -> None:
    recorder.log(level, message)
    logger.info("run %s: %s", recorder.run_id, message)


def _start_all(
    runtime: Runtime, client: Any, recorder: RunRecorder, quiet: Quiesce, first_stop: float
) -> None:
    """Start what was stopped, in order, each waited for; never raises."""
    for item in quiet.stopped:
        name = item.container.name
        try:
            engine.start(client, item.container.id)
            with runtime.sessions.begin() as session:
                session.execute(
                    delete(QuiescedContainer).where(QuiescedContainer.id == item.row_id)
                )
            state = engine.wait_ready(client, item.container.id, READY_TIMEOUT)
            item.down_seconds = time.monotonic() - item.stopped_at
            _log(
                recorder,
                "info",
                f"started container {name}: {state}, down {item.down_seconds:.1f} s",
            )
        except EngineError as error:
            quiet.problems.append(str(error))
            _log(recorder, "error", f"container {name}: {error}")
    quiet.total_seconds = time.monotonic() - first_stop
    downs = ", ".join(
        f"{item.container.name} {item.down_seconds:.1f} s"
        for item in quiet.stopped
        if item.down_seconds is not None
    )
    _log(
        recorder,
        "info",
        f"containers down {quiet.total_seconds:.1f} s in total ({downs or 'none ready again'})",
    )


def _uses_engine(session: Session, job: Job) -> tuple[bool, list[str]]:
    """Whether to ask the engine for this job's containers, and the job's own list.

    Labels count wherever an engine is set up (Settings, DOCKER_HOST, or Docker's
    socket mounted); an installation without one never waits on an engine."""
    names = list((job.options or {}).get("stop_containers") or [])
    configured = (
        bool(installation.container_engine(session))
        or bool(os.environ.get("DOCKER_HOST"))
        or os.path.exists(engine.DEFAULT_ADDRESS.removeprefix("unix://"))
    )
    return bool(names) or configured or job.source_kind == "volume", names


@contextmanager
def containers_stopped(
    runtime: Runtime, run_id: int, job_id: int, recorder: RunRecorder
) -> Iterator[Quiesce]:
    """Stop the job's containers for the body of the `with`, then start them again,
    whatever the body raised. EngineError (before anything is stopped) when the engine
    cannot say which containers to stop."""
    quiet = Quiesce()
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            yield quiet
            return
        uses, names = _uses_engine(session, job)
        address = engine.address(installation.container_engine(session))
        slug = job.slug
    if not uses:
        yield quiet
        return
    try:
        client = engine.connect(address)
    except EngineError as error:
        raise EngineError(f"cannot ask which containers to stop for this job: {error}") from error
    try:
        try:
            containers = chosen(client, slug, names)
        except EngineError as error:
            raise EngineError(
                f"cannot ask which containers to stop for this job: {error}"
            ) from error
        if not containers:
            yield quiet
            return
        first_stop = time.monotonic()
        try:
            for position, container in reversed(list(enumerate(containers))):
                row_id = _remember(runtime, run_id, address, container, position)
                stopped_at = time.monotonic()
                quiet.stopped.insert(0, Stopped(row_id, container, stopped_at))
                engine.stop(client, container.id, STOP_TIMEOUT)
                _log(recorder, "info", f"stopped container {container.name}")
            yield quiet
        finally:
            _start_all(runtime, client, recorder, quiet, first_stop)
    finally:
        client.close()


def _remember(
    runtime: Runtime, run_id: int, address: str, container: Container, position: int
) -> int:
    with runtime.sessions.begin() as session:
        row = QuiescedContainer(
            run_id=run_id,
            engine=address,
            container_id=container.id,
            name=container.name,
            position=position,
        )
        session.add(row)
        session.flush()
        return row.id


_REPORTED: set[int] = set()
"""Rows whose failure to start was logged already (recovery tries again every few seconds)."""


def restart_left_stopped(runtime: Runtime) -> int:
    """Start the containers that runs no longer running left stopped (their worker
    died), in each run's start order, each waited for; the count started. Never raises:
    what cannot be started now stays listed for the next recovery."""
    with runtime.sessions() as session:
        rows = session.scalars(
            select(QuiescedContainer)
            .outerjoin(Run, Run.id == QuiescedContainer.run_id)
            .where((Run.id.is_(None)) | (Run.status != RunStatus.RUNNING.value))
            .order_by(QuiescedContainer.run_id, QuiescedContainer.position)
        ).all()
        left = [(row.id, row.run_id, row.engine, row.container_id, row.name) for row in rows]
    started = 0
    clients: dict[str, Any] = {}
    try:
        for row_id, run_id, address, container_id, name in left:
            try:
                client = clients.get(address) or engine.connect(address)
                clients[address] = client
                engine.start(client, container_id)
                with runtime.sessions.begin() as session:
                    session.execute(delete(QuiescedContainer).where(QuiescedContainer.id == row_id))
                state = engine.wait_ready(client, container_id, READY_TIMEOUT)
                message = (
                    f"recovery: started container {name} again ({state}) after its worker stopped"
                )
                level = "info"
                started += 1
            except EngineError as error:
                if row_id in _REPORTED:
                    continue
                _REPORTED.add(row_id)
                message = (
                    f"recovery: container {name} could not be started again: {error}"
                    " (tried again at every recovery)"
                )
                level = "error"
            logger.warning("run %s: %s", run_id, message)
            with runtime.sessions.begin() as session:
                if session.get(Run, run_id) is not None:
                    session.add(RunLog(run_id=run_id, level=level, message=message))
    finally:
        for client in clients.values():
            client.close()
    return started
