"""Run Mackuper the way users do, and talk to it the way its pages do.

`MackuperProcess` starts `mackuper serve` (or `web` / `worker`) as a subprocess
with its own data directory on a free loopback port. `BrowserClient` keeps the
session cookie and sends JSON with the CSRF token read from the page's meta tag,
exactly as static/js/app.js does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.servers.ports import free_port

ADMIN_USER = "admin"
ADMIN_PASSWORD = "Correct-Horse-9"
FINAL_STATUSES = {"success", "warning", "failed", "cancelled", "interrupted", "skipped"}


class MackuperProcess:
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
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "process.log"

    def start(self, command: str = "serve", wait: bool = True) -> MackuperProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mackuper", command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait and command != "worker":
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"mackuper exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"mackuper did not answer in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def children(self) -> list[int]:
        """PIDs of the processes in this process group (serve's web and worker)."""
        if self.process is None:
            return []
        output = subprocess.run(
            ["pgrep", "-g", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in output.split()]

    def worker_pid(self) -> int:
        for pid in self.children():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if b"worker" in command:
                return pid
        raise RuntimeError("no worker process found")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise

    def kill_all(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def running_mackuper(
    data_dir: Path, extra_env: dict[str, str] | None = None, command: str = "serve"
) -> Iterator[MackuperProcess]:
    process = MackuperProcess(data_dir, extra_env)
    try:
        yield process.start(command)
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
