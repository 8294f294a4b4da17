"""What the API says about queued runs: the label a run waits for (and that no live
worker has it), its place in its lane, and a job's label as the job form sets it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mackuper.models import WorkerHeartbeat
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import backed_up, local_destination, ok
from tests.trees import make_small_tree

pytestmark = pytest.mark.integration


def _job_body(source: Path, destination_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Documents",
        "source_kind": "local",
        "source": {"paths": [str(source)], "excludes": []},
        "schedule": "",
        "destination_ids": [destination_id],
        **fields,
    }


def _run(api: ApiClient, run_id: int) -> dict[str, Any]:
    run: dict[str, Any] = ok(api, "GET", f"/api/runs/{run_id}")["run"]
    return run


def test_a_run_waits_for_its_jobs_label_and_says_so_until_a_worker_carries_it(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "src")
    destination = local_destination(api, tmp_path / "store")
    body = _job_body(source, destination["id"])
    job = ok(api, "POST", "/api/jobs", {**body, "worker_label": "NAS"})["job"]
    assert job["worker_label"] == "nas"

    run = ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"]
    assert run["worker_label"] == "nas" and run["queue_position"] == 1
    assert "labelled 'nas'" in run["waiting_for"]
    (logged,) = ok(api, "GET", f"/api/runs/{run['id']}/log")["lines"]
    assert logged["level"] == "warning" and logged["message"] == run["waiting_for"]
    assert ok(api, "GET", "/api/ui/workers") == {"workers": [], "labels": []}

    with runtime.sessions.begin() as session:
        now = datetime.now(UTC)
        session.add(
            WorkerHeartbeat(worker_id="nas:1:x", hostname="nas", pid=1, labels=["nas"], seen_at=now)
        )
    assert _run(api, run["id"])["waiting_for"] is None
    assert ok(api, "GET", "/api/ui/workers")["labels"] == ["nas"]

    # Left out, the label is kept; changed, the queued backup follows it.
    assert ok(api, "PUT", f"/api/jobs/{job['id']}", body)["job"]["worker_label"] == "nas"
    changed = ok(api, "PUT", f"/api/jobs/{job['id']}", {**body, "worker_label": "office"})
    assert changed["job"]["worker_label"] == "office"
    assert "'office'" in _run(api, run["id"])["waiting_for"]

    refused = api.call("PUT", f"/api/jobs/{job['id']}", {**body, "worker_label": "my nas"})
    assert refused.status_code == 422
    assert "A label is letters" in refused.get_json()["fields"]["worker_label"]

    anywhere = ok(api, "PUT", f"/api/jobs/{job['id']}", {**body, "worker_label": None})
    assert anywhere["job"]["worker_label"] is None
    assert _run(api, run["id"])["worker_label"] is None
    assert _run(api, run["id"])["waiting_for"] is None


def test_a_queued_run_shows_its_place_in_its_lane_restores_first(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "store")
    backup = backed_up(api, runtime, make_small_tree(tmp_path / "src"), destination["id"])
    again = {"another": True}  # three queued backups of one job, asked for on purpose
    backups = [
        ok(api, "POST", f"/api/jobs/{backup['job_id']}/run", again)["run"]["id"] for _ in range(3)
    ]
    verify = ok(api, "POST", "/api/verify", {"artifact_id": backup["id"]})["run"]["id"]
    target = {"kind": "local", "path": str(tmp_path / "out")}
    restore = ok(api, "POST", "/api/restore", {"artifact_id": backup["id"], "target": target})

    assert [_run(api, run_id)["queue_position"] for run_id in backups] == [1, 2, 3]
    # Restores and verifications wait in their own lane, restores ahead.
    assert restore["run"]["queue_position"] == 1
    assert _run(api, verify)["queue_position"] == 2
    ok(api, "POST", f"/api/runs/{backups[0]}/cancel")
    assert _run(api, backups[0])["queue_position"] is None
    assert [_run(api, run_id)["queue_position"] for run_id in backups[1:]] == [1, 2]
    listed = {run["id"]: run for run in ok(api, "GET", "/api/runs?status=queued")["runs"]}
    assert listed[backups[2]]["queue_position"] == 2
