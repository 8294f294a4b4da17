"""Real receivers for alert tests (an HTTP server, an SMTP server) and a run helper."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mackuper.models import Destination, Job, NotificationChannel, Run, RunLog, RunStatus
from mackuper.runs.lifecycle import execute_run
from mackuper.runtime import Runtime
from tests.servers.ports import LOOPBACK, free_port
from tests.trees import file_hashes


@dataclass
class Request:
    path: str
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every POST; answers 200 (or `status`)."""

    port: int
    requests: list[Request] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def wait_for(self, count: int, timeout: float = 10) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.requests)

    def webhooks(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if r.content_type.startswith("application/json")]


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[HttpReceiver]:
    state = HttpReceiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            state.requests.append(Request(self.path, self.headers.get("Content-Type", ""), body))
            self.send_response(state.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@dataclass
class MailReceiver:
    port: int
    messages: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope.content)
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)


@pytest.fixture(name="mail_receiver")
def mail_receiver_fixture() -> Iterator[MailReceiver]:
    state = MailReceiver(port=free_port())
    controller = Controller(state, hostname=LOOPBACK, port=state.port)
    controller.start()
    yield state
    controller.stop()


def add_channel(
    runtime: Runtime, name: str, url: str, events: dict[str, bool] | None = None
) -> None:
    with runtime.sessions.begin() as session:
        session.add(
            NotificationChannel(
                name=name,
                url_encrypted=runtime.secrets.encrypt({"url": url}),
                events=events or {},
            )
        )


def make_job(
    runtime: Runtime,
    source: Path,
    destinations: list[Path],
    *,
    notifications: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    hooks: dict[str, Any] | None = None,
    name: str = "Home files",
) -> int:
    """A tar.gz job from `source` to local directories, with alert settings as given."""
    with runtime.sessions.begin() as session:
        rows = []
        for number, path in enumerate(destinations):
            row = Destination(
                name=f"{name} dest {number}", kind="local", config={"path": str(path)}
            )
            session.add(row)
            rows.append(row)
        job = Job(
            name=name,
            slug=name.lower().replace(" ", "-"),
            source_kind="local",
            source_config={"paths": [str(source)], "excludes": []},
            archive_format="tar.gz",
            notifications=notifications or {},
            notify_secrets_encrypted=runtime.secrets.encrypt(secrets) if secrets else None,
            hooks=hooks or {},
            destinations=rows,
        )
        session.add(job)
        session.flush()
        return job.id


def run_job(runtime: Runtime, job_id: int) -> Run:
    """Claim-free: make a running run of `job_id`, execute it here, return the stored row."""
    from datetime import UTC, datetime

    with runtime.sessions.begin() as session:
        job = session.get_one(Job, job_id)
        run = Run(
            job_id=job_id,
            job_name=job.name,
            status=RunStatus.RUNNING.value,
            worker_id="test",
            started_at=datetime.now(UTC),
        )
        session.add(run)
        session.flush()
        run_id = run.id
    execute_run(runtime, run_id, threading.Event())
    with runtime.sessions() as session:
        return session.get_one(Run, run_id)


def run_log(runtime: Runtime, run_id: int) -> list[str]:
    with runtime.sessions() as session:
        rows = session.scalars(select(RunLog).where(RunLog.run_id == run_id).order_by(RunLog.id))
        return [f"{row.level}: {row.message}" for row in rows]


def assert_archive_matches(directory: Path, source: Path, scratch: Path) -> None:
    """The one .tar.gz under `directory` extracts with GNU tar to exactly `source`."""
    (archive,) = directory.rglob("*.tar.gz")
    scratch.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(scratch)], check=True)
    assert file_hashes(scratch / str(source).lstrip("/")) == file_hashes(source)
