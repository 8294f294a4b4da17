"""SIGKILL of the worker mid-upload to SFTP and to an rclone remote: after the restart
nothing of the upload is visible at the destination.

The destination sits behind a throttled loopback proxy so the upload is really in
flight (its temporary file already on the server's disk) when the worker is killed.
The new worker's recovery removes the temporary name recorded when the upload began.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness import BrowserClient, running_mackuper
from tests.servers.ports import LOOPBACK
from tests.servers.rclone_remotes import RcloneRemote
from tests.servers.sshd import SSHServer
from tests.servers.throttle import ThrottledProxy

pytestmark = pytest.mark.e2e

LINK_SPEED = 4 * 1024 * 1024
SOURCE_FILES = 3
FILE_SIZE = 8 * 1024 * 1024


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def _files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize("kind", ["sftp", "rclone-webdav"])
def test_worker_killed_mid_upload_leaves_nothing_at_the_destination(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for index in range(SOURCE_FILES):
        (source / f"part-{index}.bin").write_bytes(os.urandom(FILE_SIZE))

    if kind == "sftp":
        sshd: SSHServer = request.getfixturevalue("sshd")
        user = sshd.users["password"]
        root = sshd.make_remote_tree(user.username, {}) / "backups"
        proxy = ThrottledProxy(sshd.host, sshd.port, LINK_SPEED).start()
        destination = {
            "name": "NAS",
            "kind": "sftp",
            "host": LOOPBACK,
            "port": proxy.port,
            "username": user.username,
            "auth": "password",
            "password": user.password,
            "path": str(root),
            "host_key": sshd.host_public_key,
        }
    else:
        remote: RcloneRemote = request.getfixturevalue("rclone_webdav")
        root = remote.data_dir / f"crash-{tmp_path.name}"
        proxy = ThrottledProxy(LOOPBACK, remote.port, LINK_SPEED).start()
        options, secret_options = remote.settings()
        destination = {
            "name": "WebDAV",
            "kind": "rclone",
            "remote_type": "webdav",
            "options": {**options, "url": proxy.url},
            "secret_options": f"pass = {secret_options['pass']}",
            "path": root.name,
        }

    try:
        with running_mackuper(tmp_path / "data") as mackuper:
            browser = BrowserClient(mackuper.url)
            saved = browser.complete_setup(destination)
            job = browser.create_job("Crash test", source, saved["id"], archive_format="tar")
            first = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
            browser.wait_status(first, {"running"})
            # The upload is in flight: its temporary file is on the server's disk.
            wait_until(
                lambda: root.is_dir() and any(".partial-" in name for name in _files(root)),
                60,
                "the upload never reached the server",
            )
            old_worker = mackuper.worker_pid()
            os.kill(old_worker, signal.SIGKILL)

            crashed = browser.wait_run(first, timeout=90)
            assert crashed["status"] == "interrupted", crashed
            assert mackuper.worker_pid() != old_worker
            wait_until(lambda: _files(root) == [], 60, f"left at the destination: {_files(root)}")
            # Recovery removes the upload, then records it: the state follows the files.
            wait_until(
                lambda: _artifact_states(browser, first) == ["deleted"],
                30,
                "the interrupted upload is never recorded as deleted",
            )

            second = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
            finished = browser.wait_run(second, timeout=120)
        assert finished["status"] == "success", finished["error"]
        (stored,) = finished["artifacts"]
        assert _files(root) == sorted([stored["key"], stored["key"] + ".manifest.json"])
    finally:
        proxy.close()


def _artifact_states(browser: BrowserClient, run_id: int) -> list[str]:
    return [a["state"] for a in browser.ok("GET", f"/api/runs/{run_id}")["run"]["artifacts"]]
