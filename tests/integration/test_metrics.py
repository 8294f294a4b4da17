"""/metrics, scraped and parsed with prometheus_client, agrees with the database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from mackuper.models import Artifact, Destination, Run, WorkerHeartbeat
from mackuper.runtime import Runtime
from mackuper.web import create_app
from tests.integration.notify_helpers import make_job, run_job
from tests.trees import make_small_tree

pytestmark = pytest.mark.integration

TOKEN = "metrics-token-0123456789"


@pytest.fixture
def scraper(runtime: Runtime) -> FlaskClient:
    runtime.settings = dataclasses.replace(runtime.settings, metrics_token=TOKEN)
    return create_app(runtime, {"TESTING": True}).test_client()


def _scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_match_the_runs_and_artifacts_in_the_database(
    runtime: Runtime, scraper: FlaskClient, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    job_id = make_job(runtime, source, [tmp_path / "out", tmp_path / "copy"], name="Photos")
    good = run_job(runtime, job_id)
    second = run_job(runtime, job_id)
    broken = make_job(runtime, tmp_path / "missing", [tmp_path / "out2"], name="Broken")
    failed = run_job(runtime, broken)
    with runtime.sessions.begin() as session:
        session.add(
            WorkerHeartbeat(
                worker_id="w1",
                hostname="h",
                pid=1,
                seen_at=datetime.now(UTC) - timedelta(seconds=5),
            )
        )

    metrics = _scrape(scraper)

    assert good.status == second.status == "success" and failed.status == "failed"
    photos = (("backup_job", "photos"),)
    assert metrics[("mackuper_job_last_success_timestamp_seconds", photos)] == pytest.approx(
        second.finished_at.timestamp() if second.finished_at else 0
    )
    assert metrics[("mackuper_job_last_duration_seconds", photos)] == pytest.approx(
        second.duration_seconds
    )
    assert metrics[("mackuper_job_last_size_bytes", photos)] == second.bytes_written > 0
    assert (
        metrics[("mackuper_job_runs_total", (("backup_job", "photos"), ("status", "success")))] == 2
    )
    assert (
        metrics[("mackuper_job_runs_total", (("backup_job", "broken"), ("status", "failed")))] == 1
    )
    assert (
        "mackuper_job_last_success_timestamp_seconds",
        (("backup_job", "broken"),),
    ) not in metrics
    assert metrics[("mackuper_job_last_duration_seconds", (("backup_job", "broken"),))] == (
        pytest.approx(failed.duration_seconds)
    )
    with runtime.sessions() as session:
        stored = session.scalar(
            select(func.sum(Artifact.size))
            .join(Destination, Destination.id == Artifact.destination_id)
            .where(Destination.name == "Photos dest 0")
        )
        runs = session.scalar(select(func.count()).select_from(Run))
    assert runs == 3
    assert stored == good.bytes_written + second.bytes_written
    assert metrics[("mackuper_uploaded_bytes_total", (("destination", "Photos dest 0"),))] == stored
    assert metrics[("mackuper_scheduler_up", ())] == 1
    assert (
        metrics[
            (
                "mackuper_job_info",
                (("backup_job", "photos"), ("enabled", "true"), ("name", "Photos")),
            )
        ]
        == 1
    )


def test_metrics_answer_only_with_the_token(runtime: Runtime, scraper: FlaskClient) -> None:
    assert scraper.get("/metrics").status_code == 401
    wrong = scraper.get("/metrics", headers={"Authorization": "Bearer wrong-token-0000000"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert _scrape(scraper)[("mackuper_scheduler_up", ())] == 0


def test_metrics_are_off_without_a_token(client: FlaskClient) -> None:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    assert "MACKUPER_METRICS_TOKEN" in response.get_data(as_text=True)
