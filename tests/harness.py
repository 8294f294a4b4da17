"""Run Mackuper the way users do, and talk to it the way its pages do.

`MackuperProcess` starts `mackuper serve` (or `web` / `worker`) as a subprocess
with its own data directory on a free loopback port. `BrowserClient` keeps the
session cookie and sends JSON with the CSRF token read from the page's meta tag,
exactly as static/js/app.js does.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.servers.ports import free_port
from tests.servers.process import ManagedProcess, descendant_pids

ADMIN_USER = "admin"
ADMIN_PASSWORD = "Correct-Horse-9"
FINAL_STATUSES = {"success", "warning", "failed", "cancelled", "interrupted", "skipped"}


class MackuperProcess:
    """`mackuper serve`, `web` or `worker` on a free loopback port with its own data
    directory; started, stopped and logged by the test servers' `ManagedProcess`."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MACKUPER_"))},
            "MACKUPER_DATA_DIR": str(data_dir),
            "PORT": str(self.port),
            "MACKUPER_WORKER_POLL_SECONDS": "0.2",
            "WEB_CONCURRENCY": "1",
            **(extra_env or {}),
        }
        self.log_path = data_dir / "process.log"
        self.server: ManagedProcess | None = None
        self.returncode: int | None = None

    def start(self, command: str = "serve", wait: bool = True) -> MackuperProcess:
        """Start `mackuper <command>`; unless `wait` is false or it is a worker, wait for
        /health to answer."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The stop signal goes to the leader only, as tini gives it to `mackuper serve`
        # in the container: serve must stop its web and worker children itself.
        self.server = ManagedProcess(
            f"mackuper {command}",
            [sys.executable, "-m", "mackuper", command],
            self.log_path,
            env=self.env,
            stop_leader_only=True,
        )
        self.server.start()
        if wait and command != "worker":
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait until /health answers 200; ServerStartError (with the log) otherwise."""
        assert self.server is not None, "start() first"
        self.server.wait_ready(self._healthy, timeout=timeout)

    def _healthy(self) -> bool:
        try:
            return requests.get(self.url + "/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def is_running(self) -> bool:
        """True while the leader process has been started and has not exited."""
        return self.server is not None and self.server.is_running()

    def log(self) -> str:
        """Its output so far (the middle cut out when long)."""
        return self.server.log_text() if self.server is not None else ""

    def worker_pid(self) -> int:
        """The pid of `serve`'s worker child; RuntimeError if there is none."""
        if self.server is None or self.server.pid is None:
            raise RuntimeError("mackuper is not running")
        for pid in descendant_pids(self.server.pid):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if b"worker" in command:
                return pid
        raise RuntimeError("no worker process found")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM the leader, SIGKILL the group after `timeout` s.

        Returns (and keeps in `returncode`) the leader's exit code, negative when it
        was killed by a signal; None if it never started.
        """
        if self.server is not None and self.server.popen is not None:
            self.returncode = self.server.stop(timeout=timeout)
        return self.returncode

    def kill_all(self) -> None:
        """SIGKILL every process of its group now (a no-op once stopped)."""
        if self.server is not None:
            self.server.kill()


@contextmanager
def running_mackuper(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    command: str = "serve",
    ready_timeout: float = 120,
) -> Iterator[MackuperProcess]:
    """`mackuper <command>` until the block ends, its process group stopped for sure
    (also when it never became ready); patient with a loaded machine."""
    process = MackuperProcess(data_dir, extra_env)
    try:
        process.start(command, wait=False)
        if command != "worker":
            process.wait_ready(timeout=ready_timeout)
        yield process
    except BaseException:
        # A failed test shows the server's side too (a 500's traceback is only there).
        log = data_dir / "logs" / "mackuper.log"
        if log.is_file():
            tail = log.read_text(errors="replace").splitlines()[-120:]
            print(f"--- last lines of {log}:", *tail, sep="\n")
        raise
    finally:
        try:
            process.stop()
        finally:
            process.kill_all()


def disk_bytes_written(pid: int) -> int:
    """Bytes process `pid` has caused to be written to storage (/proc/PID/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/PID/io")


def peak_rss(pid: int) -> int:
    """The peak resident set size of process `pid` so far, in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/PID/status")


class BrowserClient:
    """An HTTP client that behaves like Mackuper's pages."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.csrf = ""

    def page(self, path: str) -> requests.Response:
        response = self.http.get(self.base_url + path, timeout=10)
        match = re.search(r'<meta name="csrf-token" content="([^"]+)"', response.text)
        if match:
            self.csrf = match.group(1)
        return response

    def api(self, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"Accept": "application/json"}
        if method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        return self.http.request(
            method, self.base_url + path, json=body, headers=headers, timeout=30
        )

    def ok(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self.api(method, path, body)
        status = response.status_code
        assert status < 300, f"{method} {path}: {status} {response.text}"
        result: dict[str, Any] = response.json()
        return result

    def complete_setup(self, destination: dict[str, Any]) -> dict[str, Any]:
        """Walk the wizard: admin account, test connection, save destination, finish."""
        self.page("/setup")
        self.ok(
            "POST",
            "/api/setup/admin",
            {
                "username": ADMIN_USER,
                "password": ADMIN_PASSWORD,
                "password_confirm": ADMIN_PASSWORD,
            },
        )
        self.page("/setup")
        self.ok("POST", "/api/destinations/test", destination)
        saved = self.ok("POST", "/api/destinations", destination)["destination"]
        self.ok("POST", "/api/setup/finish")
        self.page("/jobs")
        return saved

    def create_job(
        self, name: str, source: Path, destination_id: int, **fields: Any
    ) -> dict[str, Any]:
        """Create a job backing up the local `source`, as the job form does; its JSON."""
        body = {
            "name": name,
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "schedule": "",
            "destination_ids": [destination_id],
            **fields,
        }
        job: dict[str, Any] = self.ok("POST", "/api/jobs", body)["job"]
        return job

    def login(self, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> None:
        self.page("/login")
        self.ok("POST", "/api/login", {"username": username, "password": password})
        self.page("/")

    def wait_run(self, run_id: int, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.ok("GET", f"/api/runs/{run_id}")["run"]
            if run["status"] in FINAL_STATUSES:
                return run
            time.sleep(0.2)
        raise TimeoutError(f"run {run_id} did not finish in {timeout} s")

    def wait_status(self, run_id: int, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.ok("GET", f"/api/runs/{run_id}")["run"]
            if run["status"] in statuses:
                return run
            time.sleep(0.1)
        raise TimeoutError(f"run {run_id} never reached {statuses}")


def s3_destination_payload(server: Any, bucket: str, name: str = "Main storage") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "s3",
        "bucket": bucket,
        "region": server.region,
        "endpoint_url": server.endpoint_url,
        "path_style": True,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
    }
