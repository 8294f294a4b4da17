"""Helpers for the container engine tests: volumes with known files, a Compose-like stack."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

from tests.servers.podman import BASE_IMAGE, PodmanEngine


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_container(engine: PodmanEngine, image: str, command: Any, **options: Any) -> Any:
    """`containers.run`, tried again after an engine error 500: podman 4.3 under load
    once failed a start that the next attempt made (a test's set-up, not its subject).

    A one-shot command (not `detach`) is started detached and waited for: its logs are
    read only when it failed. Asking podman 4.3 for the logs of a container that had
    just exited once hung past the client's 60 s timeout in a full suite run."""
    for attempt in range(3):
        try:
            if options.get("detach"):
                return engine.client.containers.run(image, command, **options)
            return _run_once(engine, image, command, **options)
        except docker.errors.APIError as error:
            if error.status_code != 500 or attempt == 2:
                raise
            if options.get("name"):
                with contextlib.suppress(docker.errors.APIError):
                    engine.client.api.remove_container(options["name"], force=True)
            time.sleep(1)
    raise AssertionError("unreachable")


def _run_once(engine: PodmanEngine, image: str, command: Any, **options: Any) -> None:
    remove = options.pop("remove", False)
    container = engine.client.containers.run(image, command, detach=True, **options)
    try:
        status = container.wait(timeout=300)["StatusCode"]
        if status != 0:
            output = container.logs(stdout=True, stderr=True)
            raise docker.errors.ContainerError(container, status, command, image, output)
    finally:
        if remove:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)


def volume_with(engine: PodmanEngine, tree: Path) -> str:
    """A new named volume holding a copy of `tree` (copied by a container, `cp -a`)."""
    name = unique("mkp-vol")
    engine.client.volumes.create(name, labels=engine.labels())
    run_container(
        engine,
        BASE_IMAGE,
        ["cp", "-a", "/tree/.", "/v/"],
        volumes={str(tree): {"bind": "/tree", "mode": "ro"}, name: {"bind": "/v", "mode": "rw"}},
        labels=engine.labels(),
        remove=True,
    )
    return name


# Stops at once on SIGTERM; ready (the health check's file) a second after it starts.
COMMAND = [
    "sh",
    "-c",
    "rm -f /tmp/ready; trap 'exit 0' TERM; (sleep 1; touch /tmp/ready) &"
    " while :; do sleep 1 & wait $!; done",
]
HEALTH = {"test": ["CMD-SHELL", "test -f /tmp/ready"], "interval": 3_600_000_000_000}
"""Checked by the fixture's ticker (tests/servers/podman.py), not by this interval."""


@dataclass
class Stack:
    project: str
    slug: str
    """The job slug its containers' mackuper.stop-during-backup label names."""
    names: dict[str, str]
    """Service -> container name."""
    volume: str


def state(engine: PodmanEngine, name: str) -> dict[str, Any]:
    return dict(engine.client.api.inspect_container(name)["State"])


def wait_until_running(engine: PodmanEngine, names: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(state(engine, name).get("Status") != "running" for name in names):
        if time.monotonic() > deadline:
            raise AssertionError(f"not all of {names} run after {timeout} s")
        time.sleep(0.1)


@contextlib.contextmanager
def running_stack(engine: PodmanEngine, volume: str) -> Iterator[Stack]:
    """db (health check, mounts `volume`), app (depends on db, health check) and proxy
    (depends on app, no health check) of one Compose project, all labelled
    mackuper.stop-during-backup=<project>-nightly; removed afterwards."""
    project = unique("mkp")
    slug = f"{project}-nightly"
    names: dict[str, str] = {}
    try:
        for service, depends, health in (
            ("db", "", True),
            ("app", "db:service_healthy:false", True),
            ("proxy", "app:service_started:false", False),
        ):
            labels = engine.labels(
                **{
                    "com.docker.compose.project": project,
                    "com.docker.compose.service": service,
                    "mackuper.stop-during-backup": slug,
                }
            )
            if depends:
                labels["com.docker.compose.depends_on"] = depends
            name = f"{project}-{service}-1"
            run_container(
                engine,
                BASE_IMAGE,
                COMMAND,
                name=name,
                detach=True,
                labels=labels,
                healthcheck=HEALTH if health else None,
                volumes={volume: {"bind": "/data", "mode": "rw"}} if service == "db" else None,
            )
            names[service] = name
        wait_until_running(engine, list(names.values()))
        yield Stack(project, slug, names, volume)
    finally:
        for name in names.values():
            engine.client.api.remove_container(name, force=True)
