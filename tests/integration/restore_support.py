"""Helpers for the restore tests: an in-process worker step and API shortcuts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from mackuper.models import Run, RunStatus
from mackuper.runs.lifecycle import execute_run
from mackuper.runtime import Runtime
from tests.conftest import ApiClient


def ok(api: ApiClient, method: str, path: str, body: Any = None) -> dict[str, Any]:
    response = api.call(method, path, body)
    assert response.status_code < 300, f"{method} {path}: {response.get_data(as_text=True)}"
    result: dict[str, Any] = response.get_json()
    return result


def execute_queued(runtime: Runtime, run_id: int) -> None:
    """Claim and execute one queued run in this process, as the worker would."""
    with runtime.sessions.begin() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.QUEUED.value)
            .values(status=RunStatus.RUNNING.value, started_at=datetime.now(UTC))
        )
    execute_run(runtime, run_id, threading.Event())


def finished_run(api: ApiClient, runtime: Runtime, run: dict[str, Any]) -> dict[str, Any]:
    execute_queued(runtime, run["id"])
    result: dict[str, Any] = ok(api, "GET", f"/api/runs/{run['id']}")["run"]
    return result


def run_log(api: ApiClient, run_id: int) -> list[str]:
    return [line["message"] for line in ok(api, "GET", f"/api/runs/{run_id}/log")["lines"]]


def local_destination(api: ApiClient, path: Path, name: str = "Local disk") -> dict[str, Any]:
    body = {"name": name, "kind": "local", "path": str(path)}
    destination: dict[str, Any] = ok(api, "POST", "/api/destinations", body)["destination"]
    return destination


def backed_up(
    api: ApiClient,
    runtime: Runtime,
    source: Path,
    destination_id: int,
    archive_format: str = "tar.gz",
    name: str = "Documents",
    **extra: Any,
) -> dict[str, Any]:
    """Create a job, run it, and return its one stored backup (from /api/backups)."""
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": name,
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "archive_format": archive_format,
            "schedule": "",
            "destination_ids": [destination_id],
            **extra,
        },
    )["job"]
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
    assert run["status"] == "success", run["error"]
    (backup,) = ok(api, "GET", f"/api/backups?job_id={job['id']}")["backups"]
    return backup  # type: ignore[no-any-return]


def restore(
    api: ApiClient, runtime: Runtime, backup_id: int, target: dict[str, Any], **options: Any
) -> dict[str, Any]:
    body = {"artifact_id": backup_id, "target": target, **options}
    run = ok(api, "POST", "/api/restore", body)["run"]
    assert run["kind"] == "restore"
    return finished_run(api, runtime, run)
