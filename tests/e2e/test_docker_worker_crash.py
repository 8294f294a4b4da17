"""The worker SIGKILLed while its backup has containers stopped: after its restart they
all run again (issue 18, Done-when 3, second half), on podman's Docker-compatible API.

`mackuper serve` backs up a volume to a local destination limited to 2 MiB/s, so the
backup of 16 MiB takes seconds, with the three containers of a Compose-like stack
(db, app, proxy) stopped for it. The worker is killed with SIGKILL once all three are
stopped; the restarted worker's recovery marks the run interrupted and starts db, app
and proxy again in that order, each after the one before is ready, and says so in the
run's log.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import BrowserClient, running_mackuper
from tests.integration.docker_support import running_stack, state, volume_with
from tests.servers.podman import PodmanEngine

pytestmark = pytest.mark.e2e

DATA_MIB = 16


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


def test_worker_killed_with_containers_stopped_starts_them_again_after_restart(
    tmp_path: Path, podman_engine: PodmanEngine
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "data.bin").write_bytes(os.urandom(DATA_MIB << 20))
    volume = volume_with(podman_engine, tree)
    with (
        running_stack(podman_engine, volume) as stack,
        running_mackuper(tmp_path / "data") as mackuper,
    ):
        browser = BrowserClient(mackuper.url)
        destination = browser.complete_setup(
            {
                "name": "Slow disk",
                "kind": "local",
                "path": str(tmp_path / "backups"),
                "bandwidth_limit": 2.0,
            }
        )
        browser.ok("PUT", "/api/containers/engine", {"address": podman_engine.url})
        job = browser.ok(
            "POST",
            "/api/jobs",
            {
                "name": stack.slug,
                "source_kind": "volume",
                "source": {"volumes": [volume]},
                "archive_format": "tar",
                "destination_ids": [destination["id"]],
            },
        )["job"]
        run_id = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
        names = list(stack.names.values())

        def all_stopped() -> bool:
            return all(state(podman_engine, name)["Status"] != "running" for name in names)

        wait_until(all_stopped, 60, "the backup did not stop the containers")
        assert browser.ok("GET", f"/api/runs/{run_id}")["run"]["status"] == "running"
        old_worker = mackuper.worker_pid()
        os.kill(old_worker, signal.SIGKILL)
        killed_at = time.monotonic()

        crashed = browser.wait_run(run_id, timeout=90)
        assert crashed["status"] == "interrupted", crashed

        def all_running() -> bool:
            return all(state(podman_engine, name)["Status"] == "running" for name in names)

        wait_until(all_running, 120, "the containers were not started again")
        print(f"all running again {time.monotonic() - killed_at:.1f} s after the kill")
        assert mackuper.worker_pid() != old_worker
        log = [
            line["message"]
            for line in browser.ok("GET", f"/api/runs/{run_id}/log")["lines"]
            if "recovery: started container" in line["message"]
        ]
        order = [stack.names["db"], stack.names["app"], stack.names["proxy"]]
        assert [message.split("started container ")[1].split(" ")[0] for message in log] == order
        started = {name: state(podman_engine, name)["StartedAt"] for name in stack.names.values()}
        assert started[order[0]] < started[order[1]] < started[order[2]]
