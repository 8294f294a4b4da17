"""Containers stopped during a backup, in dependency order, and always started again
(issue 18, Done-when 2 and the first half of 3), on podman's Docker-compatible API.

Three containers of one Compose project: db (a health check), app (depends on db,
health check) and proxy (depends on app, no health check), all labelled
`mackuper.stop-during-backup=<job slug>`. The run log and the engine's own events
show stops proxy, app, db and starts db, app, proxy; each start waits until the
container is healthy (db's health check passes only a second after it starts, and
app starts only after that); the downtime of each and the total are in the run log.
A backup that fails mid-way (its second volume does not exist) still starts them all.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mackuper.models import QuiescedContainer, Run, RunStatus
from mackuper.runtime import Runtime
from mackuper.worker.service import Worker
from tests.conftest import ApiClient
from tests.integration.docker_support import Stack, running_stack, state, volume_with
from tests.integration.notify_helpers import run_log
from tests.integration.restore_support import ok
from tests.servers.podman import PodmanEngine
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(podman_engine: PodmanEngine, tmp_path: Path) -> Iterator[Stack]:
    volume = volume_with(podman_engine, make_small_tree(tmp_path / "tree"))
    with running_stack(podman_engine, volume) as made:
        yield made


def make_volume_job(
    api: ApiClient,
    engine: PodmanEngine,
    stack: Stack,
    destination: Path,
    volumes: list[str],
    limit: float | None = None,
) -> int:
    ok(api, "PUT", "/api/containers/engine", {"address": engine.url})
    settings: dict[str, object] = {"name": "Here", "kind": "local", "path": str(destination)}
    if limit is not None:
        settings["bandwidth_limit"] = limit
    destination_id = ok(api, "POST", "/api/destinations", settings)["destination"]["id"]
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": stack.slug,
            "source_kind": "volume",
            "source": {"volumes": volumes},
            "archive_format": "tar",
            "destination_ids": [destination_id],
        },
    )["job"]
    assert job["slug"] == stack.slug
    return int(job["id"])


def run_backup_now(runtime: Runtime, api: ApiClient, job_id: int) -> int:
    run_id = int(ok(api, "POST", f"/api/jobs/{job_id}/run")["run"]["id"])
    worker = Worker(runtime, worker_id="quiesce-test")
    with runtime.sessions() as session:
        assert worker.claim(session, run_id)
    worker.execute(runtime, run_id, threading.Event())
    return run_id


def events_of(engine: PodmanEngine, stack: Stack, since: float) -> list[tuple[str, str, float]]:
    """(stop | start | health check, service, time) in the engine's order. Docker
    reports a stop as die then stop, podman 4.3 as die: either is one stop. (podman's
    health_status events carry the state before the check, so only "a check ran".)"""
    service = {name: key for key, name in stack.names.items()}
    found: list[tuple[str, str, float]] = []
    last: dict[str, str] = {}
    for event in engine.events(since - 1, time.time()):
        at = int(event.get("timeNano") or 0) / 1e9
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        name = attributes.get("name", "")
        action = str(event.get("Action") or event.get("status") or "")
        if at < since or name not in service:
            continue
        if action in {"die", "stop"}:
            seen = "stop"
        elif action == "start":
            seen = "start"
        elif action.startswith("health_status"):
            seen = "health check"
        else:
            continue
        if seen == "stop" and last.get(name) == "stop":
            continue
        last[name] = seen
        found.append((seen, service[name], at))
    return found


def test_backup_stops_in_reverse_dependency_order_and_starts_each_when_healthy(
    runtime: Runtime, api: ApiClient, podman_engine: PodmanEngine, stack: Stack, tmp_path: Path
) -> None:
    job_id = make_volume_job(api, podman_engine, stack, tmp_path / "backups", [stack.volume])
    since = time.time()

    run_id = run_backup_now(runtime, api, job_id)

    with runtime.sessions() as session:
        run = session.get_one(Run, run_id)
        assert run.status is RunStatus.SUCCESS, run.error
        results = run.details["results"]
    log = run_log(runtime, run_id)
    stops = [line.split("stopped container ")[1] for line in log if "stopped container " in line]
    starts = [
        line.split("started container ")[1].split(":")[0]
        for line in log
        if "started container " in line
    ]
    names = stack.names
    assert stops == [names["proxy"], names["app"], names["db"]]
    assert starts == [names["db"], names["app"], names["proxy"]]
    started_lines = [line for line in log if "started container " in line]
    assert "healthy" in started_lines[0] and "healthy" in started_lines[1]
    assert ": running, down" in started_lines[2]  # proxy has no health check
    assert any("containers down" in line and "s in total" in line for line in log)
    assert [item["name"] for item in results["containers"]] == [
        names["db"],
        names["app"],
        names["proxy"],
    ]
    assert results["containers_down_seconds"] > 0
    # the engine's events: the same order, and app started only after db was healthy
    # podman writes its events to a file the API reads back: give the last ones a moment
    deadline = time.monotonic() + 20
    while True:
        events = events_of(podman_engine, stack, since)
        if sum(action == "start" for action, _, _ in events) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    order = [(action, service) for action, service, _ in events if action != "health check"]
    assert order == [
        ("stop", "proxy"),
        ("stop", "app"),
        ("stop", "db"),
        ("start", "db"),
        ("start", "app"),
        ("start", "proxy"),
    ], events
    at = {(action, service): when for action, service, when in events if action == "start"}
    checks = [(service, when) for action, service, when in events if action == "health check"]
    # db is healthy no sooner than a second after its start (its command says so), and a
    # health check ran in between: app's start waited for it; the same for app and proxy.
    assert at["start", "app"] - at["start", "db"] >= 1.0, events
    assert any(
        at["start", "db"] < when < at["start", "app"] for service, when in checks if service == "db"
    )
    assert at["start", "proxy"] - at["start", "app"] >= 1.0, events
    for name in names.values():
        assert state(podman_engine, name)["Status"] == "running"
    with runtime.sessions() as session:
        assert session.scalars(select(QuiescedContainer)).all() == []
    # and the backup itself holds the volume
    archive = next((tmp_path / "backups").rglob("*.tar"))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
    assert file_hashes(out / "volumes" / stack.volume) == file_hashes(tmp_path / "tree")


def test_backup_failing_mid_way_starts_every_stopped_container_again(
    runtime: Runtime, api: ApiClient, podman_engine: PodmanEngine, stack: Stack, tmp_path: Path
) -> None:
    job_id = make_volume_job(
        api, podman_engine, stack, tmp_path / "backups", [stack.volume, "mkp-no-such-volume"]
    )

    run_id = run_backup_now(runtime, api, job_id)

    with runtime.sessions() as session:
        run = session.get_one(Run, run_id)
        assert run.status is RunStatus.FAILED
        assert "mkp-no-such-volume" in (run.error or "")
    log = run_log(runtime, run_id)
    assert sum("stopped container " in line for line in log) == 3
    assert sum("started container " in line for line in log) == 3
    for name in stack.names.values():
        assert state(podman_engine, name)["Status"] == "running"
    assert not list((tmp_path / "backups").rglob("backup_*"))


def test_cancelled_backup_starts_every_stopped_container_again(
    runtime: Runtime, api: ApiClient, podman_engine: PodmanEngine, tmp_path: Path
) -> None:
    tree = tmp_path / "big"
    tree.mkdir()
    (tree / "data.bin").write_bytes(os.urandom(16 << 20))
    with running_stack(podman_engine, volume_with(podman_engine, tree)) as stack:
        job_id = make_volume_job(
            api, podman_engine, stack, tmp_path / "backups", [stack.volume], limit=2.0
        )
        run_id = int(ok(api, "POST", f"/api/jobs/{job_id}/run")["run"]["id"])
        worker = Worker(runtime, worker_id="quiesce-test")
        with runtime.sessions() as session:
            assert worker.claim(session, run_id)
        running = threading.Thread(target=worker.execute, args=(runtime, run_id, threading.Event()))
        running.start()
        names = list(stack.names.values())
        deadline = time.monotonic() + 60
        while any(state(podman_engine, name)["Status"] == "running" for name in names):
            assert time.monotonic() < deadline, "the backup did not stop the containers"
            time.sleep(0.1)
        ok(api, "POST", f"/api/runs/{run_id}/cancel")
        running.join(timeout=120)

        with runtime.sessions() as session:
            assert session.get_one(Run, run_id).status is RunStatus.CANCELLED
        for name in names:
            assert state(podman_engine, name)["Status"] == "running"
        assert not list((tmp_path / "backups").rglob("backup_*"))


def test_a_container_to_stop_that_does_not_exist_fails_the_run_before_anything_stops(
    runtime: Runtime, api: ApiClient, podman_engine: PodmanEngine, stack: Stack, tmp_path: Path
) -> None:
    job_id = make_volume_job(api, podman_engine, stack, tmp_path / "backups", [stack.volume])
    job = ok(api, "GET", f"/api/jobs/{job_id}")["job"]
    body = {
        key: job[key]
        for key in ("name", "source_kind", "source", "archive_format", "destination_ids")
    }
    ok(api, "PUT", f"/api/jobs/{job_id}", {**body, "stop_containers": ["mkp-no-such-container"]})
    refused = api.call("PUT", f"/api/jobs/{job_id}", {**body, "stop_containers": ["bad name"]})
    assert refused.status_code == 422
    assert "letters, digits" in refused.get_json()["error"]

    run_id = run_backup_now(runtime, api, job_id)

    with runtime.sessions() as session:
        run = session.get_one(Run, run_id)
        assert run.status is RunStatus.FAILED
        assert "mkp-no-such-container" in (run.error or "")
        assert "does not exist" in (run.error or "")
    assert not any("stopped container" in line for line in run_log(runtime, run_id))
    for name in stack.names.values():
        assert state(podman_engine, name)["Status"] == "running"
