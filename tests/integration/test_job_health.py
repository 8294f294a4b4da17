"""A job's health comes from its backup runs only (issue 15, items 1, 10, 11 and 13):
a verification that went well never hides a failed backup; "Needs attention" lists
failed backups, overdue jobs, destinations that could not be written and failed
verifications; History filters by kind and by day in the installation's zone; a
second Run now answers the backup already on its way."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from mackuper.models import Job, Run
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import (
    backed_up,
    finished_run,
    local_destination,
    ok,
)
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration

FAILING_PRE = {
    "hooks": {
        "pre": {
            # Backups fail (say, a database dump before them breaks); verifications run.
            "command": 'test "$MACKUPER_KIND" != backup',
            "timeout": 30,
            "on_failure": "abort",
        }
    }
}


def _job_id(api: ApiClient, name: str) -> int:
    (job,) = [job for job in ok(api, "GET", "/api/jobs")["jobs"] if job["name"] == name]
    return int(job["id"])


def _attention(api: ApiClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(api, "GET", "/api/dashboard")["attention"]
    return items


def test_a_verify_after_a_failed_backup_leaves_the_job_failed_everywhere(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "src")
    store = tmp_path / "store"
    backup = backed_up(api, runtime, source, local_destination(api, store)["id"])
    job_id = _job_id(api, "Documents")
    (tmp_path / "out").mkdir()  # the good backup is a real one: GNU tar opens it
    subprocess.run(
        ["tar", "-xzf", str(store / backup["key"]), "-C", str(tmp_path / "out")], check=True
    )
    assert file_hashes(tmp_path / "out" / source.relative_to("/")) == file_hashes(source)
    assert _attention(api) == []

    ok(api, "PUT", f"/api/jobs/{job_id}/alerts", FAILING_PRE)
    failed = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job_id}/run")["run"])
    assert failed["status"] == "failed" and "pre-backup command" in failed["error"]
    verify = ok(api, "POST", "/api/verify", {"artifact_id": backup["id"]})["run"]
    verified = finished_run(api, runtime, verify)
    assert verified["status"] == "success" and verified["summary"] == {
        "deep": False,
        "results": {"size": backup["size"], "entries": 0, "files_checked": 0},
    }

    overview = ok(api, "GET", "/api/ui/jobs")["jobs"][str(job_id)]
    assert (overview["last_status"], overview["last_run_id"]) == ("failed", failed["id"])
    (item,) = _attention(api)
    assert item["kind"] == "backup_failed" and item["job_name"] == "Documents"
    assert item["run_id"] == failed["id"] and "pre-backup command" in item["message"]
    recent = ok(api, "GET", "/api/dashboard")["recent"]
    assert [run["kind"] for run in recent] == ["verify", "backup", "backup"]

    # A failed verification is listed too, and a later good backup clears the backup item.
    (store / backup["key"]).write_bytes(b"not the archive any more")
    broken = finished_run(
        api, runtime, ok(api, "POST", "/api/verify", {"artifact_id": backup["id"]})["run"]
    )
    assert broken["status"] == "failed"
    ok(api, "PUT", f"/api/jobs/{job_id}/alerts", {"hooks": {}})
    good = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job_id}/run")["run"])
    assert good["status"] == "success"
    assert [(item["kind"], item["run_id"]) for item in _attention(api)] == [
        ("verify_failed", broken["id"])
    ]
    assert ok(api, "GET", "/api/ui/jobs")["jobs"][str(job_id)]["last_status"] == "success"


def test_history_filters_by_kind_status_and_day_in_the_installation_zone(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    backup = backed_up(
        api,
        runtime,
        make_small_tree(tmp_path / "src"),
        local_destination(api, tmp_path / "store")["id"],
    )
    job_id = _job_id(api, "Documents")
    ok(api, "PUT", f"/api/jobs/{job_id}/alerts", FAILING_PRE)
    failed = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job_id}/run")["run"])
    verified = finished_run(
        api, runtime, ok(api, "POST", "/api/verify", {"artifact_id": backup["id"]})["run"]
    )
    ok(api, "PUT", "/api/settings/installation", {"timezone": "Pacific/Auckland"})
    # 11:30 UTC on 1 March is half past midnight on 2 March in Auckland (UTC+13).
    with runtime.sessions.begin() as session:
        session.execute(
            update(Run)
            .where(Run.id == failed["id"])
            .values(created_at=datetime(2026, 3, 1, 11, 30, tzinfo=UTC))
        )

    def ids(query: str) -> list[int]:
        return [run["id"] for run in ok(api, "GET", "/api/runs?" + query)["runs"]]

    assert ids("kind=verify") == [verified["id"]]
    assert ids("kind=backup&status=failed") == [failed["id"]]
    (row,) = ok(api, "GET", "/api/runs?kind=backup&status=failed")["runs"]
    assert "pre-backup command" in row["error"]
    assert ids("from_date=2026-03-02&to_date=2026-03-02") == [failed["id"]]
    assert ids("from_date=2026-03-01&to_date=2026-03-01") == []
    assert failed["id"] not in ids("from_date=2026-03-03")
    refused = api.call("GET", "/api/runs?kind=prune")
    assert refused.status_code == 422
    assert api.call("GET", "/api/runs?from_date=0001-01-01").status_code == 422


def test_a_destination_that_cannot_be_written_needs_attention(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "src")
    good = local_destination(api, tmp_path / "good", "Good disk")
    gone = local_destination(api, tmp_path / "gone", "USB disk")
    backed_up(api, runtime, source, good["id"])
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Both",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "schedule": "",
            "destination_ids": [good["id"], gone["id"]],
        },
    )["job"]
    shutil.rmtree(tmp_path / "gone")
    (tmp_path / "gone").write_text("the disk was unplugged and this is a file now")
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
    assert run["status"] == "warning"
    kinds = {(item["kind"], item["destination_id"]) for item in _attention(api)}
    assert kinds == {("backup_warning", None), ("destination_failing", gone["id"])}


def test_a_scheduled_job_without_a_recent_good_backup_is_overdue(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "store")
    body = {
        "source_kind": "local",
        "source": {"paths": [str(make_small_tree(tmp_path / "src"))], "excludes": []},
        "destination_ids": [destination["id"]],
    }
    hourly = ok(api, "POST", "/api/jobs", {**body, "name": "Hourly", "schedule": "0 * * * *"})
    manual = ok(api, "POST", "/api/jobs", {**body, "name": "Manual", "schedule": ""})
    assert _attention(api) == []
    with runtime.sessions.begin() as session:
        session.execute(
            update(Job)
            .where(Job.id.in_([hourly["job"]["id"], manual["job"]["id"]]))
            .values(created_at=datetime.now(UTC) - timedelta(days=2))
        )
    (item,) = _attention(api)
    assert (item["kind"], item["job_name"]) == ("overdue", "Hourly")
    ok(api, "POST", f"/api/jobs/{hourly['job']['id']}/enabled", {"enabled": False})
    assert _attention(api) == []


def test_a_second_run_now_answers_the_backup_already_queued(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    destination = local_destination(api, tmp_path / "store")
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Documents",
            "source_kind": "local",
            "source": {"paths": [str(make_small_tree(tmp_path / "src"))], "excludes": []},
            "schedule": "",
            "destination_ids": [destination["id"]],
        },
    )["job"]
    first = api.call("POST", f"/api/jobs/{job['id']}/run")
    assert first.status_code == 202 and first.get_json()["queued"] is True
    run_id = first.get_json()["run"]["id"]
    for _ in range(2):
        again = api.call("POST", f"/api/jobs/{job['id']}/run")
        assert again.status_code == 200
        answer = again.get_json()
        assert (answer["queued"], answer["run"]["id"]) == (False, run_id)
        assert f"already queued (run #{run_id})" in answer["message"]
    runs = ok(api, "GET", f"/api/runs?job_id={job['id']}")["runs"]
    assert [run["id"] for run in runs] == [run_id]
    # On purpose, a script may queue another; once the first has ended, a click queues anew.
    another = api.call("POST", f"/api/jobs/{job['id']}/run", {"another": True})
    assert another.status_code == 202 and another.get_json()["run"]["id"] != run_id
    finished_run(api, runtime, {"id": run_id})
    finished_run(api, runtime, another.get_json()["run"])
    fresh = api.call("POST", f"/api/jobs/{job['id']}/run")
    assert fresh.status_code == 202 and fresh.get_json()["run"]["id"] > run_id
