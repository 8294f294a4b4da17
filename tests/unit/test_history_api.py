"""History cleanup, installation settings, retention fields and the dashboard, over the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from mackuper.models import Artifact, Destination, Job, Run, RunLog
from mackuper.runtime import Runtime
from tests.conftest import ApiClient


def test_history_cleanup_keeps_runs_of_stored_archives_and_refuses_under_30_days(
    runtime: Runtime, api: ApiClient
) -> None:
    old = datetime.now(UTC) - timedelta(days=90)
    with runtime.sessions.begin() as session:
        destination = Destination(name="disk", kind="local", config={"path": "/tmp/x"})
        job = Job(name="docs", slug="docs", source_kind="local")
        session.add_all([destination, job])
        session.flush()
        runs = {
            name: Run(job_id=job.id, job_name="docs", status=status, created_at=created)
            for name, status, created in [
                ("old-stored", "success", old),
                ("old-deleted", "success", old),
                ("old-failed", "failed", old),
                ("recent", "failed", datetime.now(UTC)),
            ]
        }
        session.add_all(runs.values())
        session.flush()
        for name, state in (("old-stored", "stored"), ("old-deleted", "deleted")):
            session.add(
                Artifact(
                    run_id=runs[name].id,
                    job_id=job.id,
                    destination_id=destination.id,
                    key=f"{name}.tar.gz",
                    state=state,
                )
            )
        session.add(RunLog(run_id=runs["old-failed"].id, level="error", message="boom"))
        ids = {name: run.id for name, run in runs.items()}

    dashboard = api.call("GET", "/api/dashboard").json
    assert dashboard["total_backups"] == 2  # the two old successes
    assert dashboard["success_rate"] == 0.0  # the last 30 days: one failure
    assert dashboard["success_rate_days"] == 30
    refused = api.call("POST", "/api/runs/cleanup", {"days": 29})
    assert refused.status_code == 422
    assert "30" in refused.json["error"]
    done = api.call("POST", "/api/runs/cleanup", {"days": 30})
    assert done.json == {"removed": 2, "days": 30}
    with runtime.sessions() as session:
        left = set(session.scalars(select(Run.id)))
        logs = session.scalars(select(RunLog)).all()
    assert left == {ids["old-stored"], ids["recent"]}
    assert logs == []


def test_installation_settings_validate_and_persist(api: ApiClient) -> None:
    current = api.call("GET", "/api/settings/installation").json["settings"]
    assert current["missed_tick_grace_minutes"] == 30
    assert current["history_keep_days"] is None
    bad = api.call(
        "PUT",
        "/api/settings/installation",
        {"timezone": "Mars/Base", "history_keep_days": 7, "max_concurrent_runs": 0},
    )
    assert bad.status_code == 422
    assert set(bad.json["fields"]) == {"timezone", "history_keep_days", "max_concurrent_runs"}
    good = api.call(
        "PUT",
        "/api/settings/installation",
        {"timezone": "Europe/Paris", "history_keep_days": 90, "max_concurrent_runs": 3},
    )
    assert good.json["settings"] == {
        "timezone": "Europe/Paris",
        "missed_tick_grace_minutes": 30,
        "max_concurrent_runs": 3,
        "history_keep_days": 90,
    }
    preview = api.call("GET", "/api/schedule/preview?cron=30+2+*+*+*").json
    assert preview["timezone"] == "Europe/Paris"
    assert all(time.endswith(("+01:00", "+02:00")) for time in preview["next"])
    assert api.call("GET", "/api/dashboard").json["timezone"] == "Europe/Paris"


def test_job_form_rejects_a_bad_retention_count(api: ApiClient, runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        session.add(Destination(name="disk", kind="local", config={"path": "/tmp/x"}))
    destination_id = api.call("GET", "/api/destinations").json["destinations"][0]["id"]
    response = api.call(
        "POST",
        "/api/jobs",
        {
            "name": "docs",
            "source_kind": "local",
            "source": {"paths": ["/tmp"], "excludes": []},
            "destination_ids": [destination_id],
            "retention": {"keep_days": 0},
        },
    )
    assert response.status_code == 422
    assert response.json["fields"]["retention.keep_days"] == (
        "Days to keep must be a whole number from 1 to 100000, or empty."
    )


def test_schedule_preview_explains_a_bad_expression(api: ApiClient) -> None:
    response = api.call("GET", "/api/schedule/preview?cron=61+*+*+*+*&timezone=UTC")
    assert response.status_code == 422
    assert response.json["error"].startswith("Invalid cron expression")


def test_dashboard_counts_backups_not_restores_or_verifications(
    runtime: Runtime, api: ApiClient
) -> None:
    now = datetime.now(UTC)
    with runtime.sessions.begin() as session:
        job = Job(name="docs", slug="docs", source_kind="local")
        session.add(job)
        session.flush()
        rows = [
            ("backup", "success", now - timedelta(days=3)),
            ("backup", "failed", now - timedelta(days=1)),
            ("restore", "success", now - timedelta(minutes=5)),
            ("verify", "success", now - timedelta(minutes=1)),
        ]
        runs = [
            Run(
                job_id=job.id,
                job_name="docs",
                kind=kind,
                status=status,
                created_at=when,
                started_at=when,
                finished_at=when + timedelta(seconds=30),
            )
            for kind, status, when in rows
        ]
        session.add_all(runs)
        session.flush()
        failed_backup = runs[1].id

    dashboard = api.call("GET", "/api/dashboard").json
    assert dashboard["total_backups"] == 1
    assert dashboard["success_rate"] == 50.0  # one good backup of two; not 3 of 4 runs
    assert dashboard["last_backup"]["run_id"] == failed_backup  # not the later verify
