"""Dashboard and history API latency on a big history: 200 jobs, 100,000 runs.

    .venv/bin/python -m bench.seed_history [--runs 100000] [--jobs 200] [--repeat 30]
        [--database-url postgresql+psycopg://...]

Seeds a fresh SQLite database in a temporary data directory (or the given
PostgreSQL database, which must be empty) with runs spread over two years, one
stored or deleted artifact per good run, and a few running ones; then calls the
API in-process through Flask's test client, logged in like a browser, and prints
the median and 90th percentile of each call's wall time, and its median CPU time.
The goal is a median under 50 ms; the exit status is 1 when a median misses it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import insert, select

from mackuper.config import load_settings
from mackuper.models import Artifact, Destination, Job, Run, RunStatus
from mackuper.runs.retention import refresh_statistics
from mackuper.runtime import Runtime, open_runtime
from mackuper.web import create_app

PASSWORD = "Bench-Password-9"  # noqa: S105 - a throwaway login for the benchmark
STATUSES = [
    (RunStatus.SUCCESS.value, 80),
    (RunStatus.WARNING.value, 6),
    (RunStatus.FAILED.value, 8),
    (RunStatus.SKIPPED.value, 4),
    (RunStatus.CANCELLED.value, 1),
    (RunStatus.INTERRUPTED.value, 1),
]


def seed(runtime: Runtime, jobs: int, runs: int) -> None:
    random.seed(7)
    now = datetime.now(UTC)
    with runtime.sessions.begin() as session:
        destination = Destination(name="bench", kind="local", config={"path": "/tmp/bench"})
        session.add(destination)
        session.flush()
        destination_id = destination.id
        session.execute(
            insert(Job),
            [
                {
                    "name": f"job {index}",
                    "slug": f"job-{index}",
                    "source_kind": "local",
                    "source_config": {"paths": ["/srv"], "excludes": []},
                    "schedule": "0 2 * * *",
                    "enabled": index % 10 != 0,
                    "retention": {"keep_daily": 7},
                }
                for index in range(jobs)
            ],
        )
        job_ids = list(session.scalars(select(Job.id)))
    statuses = [status for status, _ in STATUSES]
    weights = [weight for _, weight in STATUSES]
    span = timedelta(days=730).total_seconds()
    batch = 10_000
    for start in range(0, runs, batch):
        rows: list[dict[str, Any]] = []
        for index in range(start, min(runs, start + batch)):
            created = now - timedelta(seconds=span * (1 - index / runs))
            job_id = random.choice(job_ids)
            status = random.choices(statuses, weights)[0]
            rows.append(
                {
                    "job_id": job_id,
                    "job_name": f"job {job_id}",
                    "trigger": "schedule",
                    "status": status,
                    "created_at": created,
                    "started_at": created,
                    "finished_at": created + timedelta(seconds=random.randint(5, 900)),
                    "bytes_read": random.randint(10**6, 10**10),
                    "bytes_written": random.randint(10**6, 10**9),
                    "files_done": random.randint(1, 100_000),
                    "archive_name": f"backup_{index}.tar.gz",
                    "error": "source unreachable" if status == "failed" else None,
                }
            )
        with runtime.sessions.begin() as session:
            session.execute(insert(Run), rows)
    with runtime.sessions.begin() as session:
        good = session.execute(
            select(Run.id, Run.job_id, Run.bytes_written, Run.created_at).where(
                Run.status.in_([RunStatus.SUCCESS.value, RunStatus.WARNING.value])
            )
        ).all()
        recent = now - timedelta(days=30)
        session.execute(
            insert(Artifact),
            [
                {
                    "run_id": run_id,
                    "job_id": job_id,
                    "destination_id": destination_id,
                    "key": f"job-{job_id}/backup_{run_id}.tar.gz",
                    "state": "stored" if created > recent else "deleted",
                    "size": size,
                }
                for run_id, job_id, size, created in good
            ],
        )
        busy: set[int | None] = set()  # one running run per job, as the database requires
        for run in session.scalars(select(Run).order_by(Run.id.desc()).limit(50)):
            if len(busy) == 3:
                break
            if run.job_id not in busy:
                busy.add(run.job_id)
                run.status = RunStatus.RUNNING.value
                run.finished_at = None


def log_in(client: FlaskClient, existing: bool) -> None:
    page = client.get("/login" if existing else "/setup").get_data(as_text=True)
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    headers = {"X-CSRF-Token": csrf}
    credentials = {"username": "admin", "password": PASSWORD}
    if existing:
        response = client.post("/api/login", json=credentials, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return
    response = client.post("/api/setup/admin", json=credentials, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert client.post("/api/setup/finish", headers=headers).status_code == 200


def measure(client: FlaskClient, path: str, repeat: int) -> tuple[float, float, float]:
    """Median and 90th percentile wall time, and median CPU time of this process, in ms.

    On a shared, busy machine the wall time mostly measures waiting for a core; the
    CPU time (the API runs in this process, SQLite included) is the work itself.
    """
    client.get(path)  # warm caches
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)
    walls.sort()
    return statistics.median(walls), walls[int(len(walls) * 0.9) - 1], statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--data-dir", default="", help="keep the data here; a seeded one is reused as it is"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        env = {"MACKUPER_DATA_DIR": args.data_dir or str(Path(directory) / "data")}
        if args.database_url:
            env["DATABASE_URL"] = args.database_url
        runtime = open_runtime(load_settings(env))
        with runtime.sessions() as session:
            seeded = session.scalar(select(Job.id).limit(1)) is not None
        if not seeded:
            started = time.perf_counter()
            seed(runtime, args.jobs, args.runs)
            with runtime.sessions.begin() as session:
                # What the worker's daily maintenance does; a real history has it.
                refresh_statistics(session)
            elapsed = time.perf_counter() - started
            print(f"seeded {args.jobs} jobs, {args.runs} runs in {elapsed:.1f} s")
        app = create_app(runtime, {"TESTING": True})
        client = app.test_client()
        log_in(client, seeded)
        with runtime.sessions() as session:
            job_id = session.scalar(select(Job.id).order_by(Job.id).limit(1))
        since = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
        paths = [
            "/api/dashboard",
            "/api/runs",
            "/api/runs?page=50",
            "/api/runs?status=failed",
            f"/api/runs?job_id={job_id}",
            f"/api/runs?since={since}",
            f"/api/runs?job_id={job_id}&status=success&since=2025-01-01",
        ]
        print(f"{'call':<60} {'median ms':>10} {'p90 ms':>8} {'CPU ms':>8}")
        worst = 0.0
        for path in paths:
            median, p90, cpu = measure(client, path, args.repeat)
            worst = max(worst, median)
            print(f"GET {path:<56} {median:>10.1f} {p90:>8.1f} {cpu:>8.1f}")
        runtime.engine.dispose()
    sys.exit(0 if worst < 50 else 1)


if __name__ == "__main__":
    main()
