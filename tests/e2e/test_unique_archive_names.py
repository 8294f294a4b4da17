"""Twenty quick "Run now" of one job on two worker processes: twenty archives.

With one-second archive names, quick runs of one job that follow each other
within a second (here on two workers, on PostgreSQL) used to share a name, and
the later run silently replaced the earlier one's archive. A pre-command writes
the run's id into the source, so the source changes between runs and each
archive must hold exactly its own run's state. Then retention deletes exactly the
archives it names, and nothing else.

Which worker takes a run is pinned, not left to chance: runs of one job never
overlap, and the worker whose run just ended is the first to look for the next one,
so left alone one worker may take all twenty (CI saw it). The job's worker label
alternates, each run queued while the one before it runs, so each run's successor
runs in the other process and every name it picks was last picked there.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from mackuper.models import Artifact, Run, RunLog
from tests.e2e.test_scale_out import wait_for
from tests.harness import BrowserClient, MackuperProcess, s3_destination_payload
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e

RUNS = 20
KEEP = 5
LABELS = ("one", "two")


def _run_id_in(archive: Path, out: Path) -> tuple[str, dict[str, str]]:
    """(the run id the archive's source held, hashes of its other files), via GNU tar."""
    out.mkdir(parents=True)
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
    (marker,) = out.rglob("run-id.txt")
    hashes = {
        Path(name).name: digest
        for name, digest in file_hashes(out).items()
        if not name.endswith("run-id.txt")
    }
    return marker.read_text().strip(), hashes


def test_twenty_quick_runs_on_two_workers_give_twenty_archives_each_of_its_own_run(
    tmp_path: Path, empty_postgres_url: str, moto_s3: S3Server
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "steady.txt").write_text("the part of the source that never changes\n")
    steady = file_hashes(source)
    backups = tmp_path / "backups"
    bucket = moto_s3.make_bucket(unique_bucket_name("twenty"))
    shared = {
        "DATABASE_URL": empty_postgres_url,
        "MACKUPER_MASTER_KEY": Fernet.generate_key().decode(),
        "SECRET_KEY": uuid.uuid4().hex,
        "MACKUPER_MAX_CONCURRENT_RUNS": "2",
    }
    web = MackuperProcess(tmp_path / "web-data", shared)
    workers = [
        MackuperProcess(tmp_path / f"{label}-data", {**shared, "MACKUPER_WORKER_LABELS": label})
        for label in LABELS
    ]
    engine = create_engine(empty_postgres_url)
    try:
        web.start("web")
        for worker in workers:
            worker.start("worker", wait=False)
        browser = BrowserClient(web.url)
        local = browser.complete_setup({"name": "Disk", "kind": "local", "path": str(backups)})
        s3 = browser.ok("POST", "/api/destinations", s3_destination_payload(moto_s3, bucket))
        job = browser.create_job(
            "Quick",
            source,
            local["id"],
            archive_format="tar.gz",
            destination_ids=[local["id"], s3["destination"]["id"]],
        )
        browser.ok(
            "PUT",
            f"/api/jobs/{job['id']}/alerts",
            {
                "hooks": {
                    "pre": {
                        "command": f'printf "%s" "$MACKUPER_RUN_ID" > {source}/run-id.txt',
                        "timeout": 30,
                        "on_failure": "abort",
                    }
                }
            },
        )

        def taken(run_id: int) -> bool:
            return bool(browser.ok("GET", f"/api/runs/{run_id}")["run"]["status"] != "queued")

        settings = {
            "name": "Quick",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "schedule": "",
            "archive_format": "tar.gz",
            "destination_ids": [local["id"], s3["destination"]["id"]],
        }
        run_ids: list[int] = []
        for n in range(RUNS):
            # Queued runs follow their job's label, so the next label is set only once
            # the last run queued has been taken.
            if run_ids:
                wait_for(lambda: taken(run_ids[-1]), 60, f"run {run_ids[-1]} taken")
            label = LABELS[n % 2]
            browser.ok("PUT", f"/api/jobs/{job['id']}", {**settings, "worker_label": label})
            run = browser.ok("POST", f"/api/jobs/{job['id']}/run", {"another": True})["run"]
            run_ids.append(run["id"])
        try:
            finished = [browser.wait_run(run_id, timeout=240) for run_id in run_ids]
        except TimeoutError:
            raise AssertionError("\n".join(worker.log()[-3000:] for worker in workers)) from None
        assert [run["status"] for run in finished] == ["success"] * RUNS, finished

        with Session(engine) as session:
            artifacts = session.scalars(
                select(Artifact).where(Artifact.run_id.in_(run_ids)).order_by(Artifact.id)
            ).all()
            ran_on = dict(
                session.execute(select(Run.id, Run.worker_id).where(Run.id.in_(run_ids))).all()
            )
        stored = [artifact for artifact in artifacts if artifact.state == "stored"]
        # One archive per run and destination, each under its own name.
        assert Counter(artifact.run_id for artifact in stored) == Counter(run_ids * 2)
        local_keys = {a.key for a in stored if a.destination_id == local["id"]}
        s3_keys = {a.key for a in stored if a.destination_id != local["id"]}
        assert len(local_keys) == len(s3_keys) == RUNS
        on_disk = sorted(backups.rglob("*.tar.gz"))
        assert len(on_disk) == RUNS
        client = moto_s3.client()
        listed = client.list_objects_v2(Bucket=bucket)["Contents"]  # type: ignore[attr-defined]
        assert sorted(item["Key"] for item in listed if item["Key"].endswith(".tar.gz")) == sorted(
            s3_keys
        )
        suffixed = [key for key in local_keys if re.search(r"-\d+\.tar\.gz$", key)]
        print(f"{len(suffixed)} of {RUNS} runs shared their second with an earlier run")

        # Each archive restores to the source as it was at its own run, at both places.
        by_key = {(a.destination_id, a.key): a.run_id for a in stored}
        for archive in on_disk:
            key = archive.relative_to(backups).as_posix()
            run_id, others = _run_id_in(archive, tmp_path / "out" / key)
            assert run_id == str(by_key[local["id"], key])
            assert others == steady
            s3_key = next(
                k for (d, k), r in by_key.items() if d != local["id"] and r == int(run_id)
            )
            body = client.get_object(Bucket=bucket, Key=s3_key)["Body"].read()  # type: ignore[attr-defined]
            assert hashlib.sha256(body).digest() == hashlib.sha256(archive.read_bytes()).digest()

        # Retention: keep the newest 5 of 21; it deletes exactly what it names.
        browser.ok(
            "PUT",
            f"/api/jobs/{job['id']}",
            {**settings, "retention": {"keep_last": KEEP}},
        )
        last = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
        assert browser.wait_run(last, timeout=120)["status"] == "success"

        def states() -> dict[tuple[int, str], str]:
            with Session(engine) as session:
                return {
                    (a.destination_id, a.key): a.state
                    for a in session.scalars(select(Artifact).where(Artifact.job_id == job["id"]))
                }

        # The run is recorded first, then its retention runs: wait for it to settle.
        wait_for(
            lambda: list(states().values()).count("deleted") == 2 * (RUNS + 1 - KEEP),
            60,
            "retention after the last run",
        )
        final = states()
        with Session(engine) as session:
            named = list(
                session.scalars(
                    select(RunLog.message).where(RunLog.message.like("retention deleted %"))
                )
            )
    finally:
        for process in (web, *workers):
            try:
                process.stop()
            finally:
                process.kill_all()
        engine.dispose()
    deleted_local = {
        key for (d, key), state in final.items() if d == local["id"] and state == "deleted"
    }
    kept_local = {
        key for (d, key), state in final.items() if d == local["id"] and state == "stored"
    }
    assert len(kept_local) == KEEP and len(deleted_local) == RUNS + 1 - KEEP
    named_local = {message.split(" ")[2] for message in named if message.endswith("at Disk")}
    assert named_local == deleted_local
    assert {
        path.relative_to(backups).as_posix() for path in backups.rglob("*.tar.gz")
    } == kept_local
    remaining = client.list_objects_v2(Bucket=bucket).get("Contents", [])  # type: ignore[attr-defined]
    kept_s3 = {key for (d, key), state in final.items() if d != local["id"] and state == "stored"}
    assert {item["Key"] for item in remaining if item["Key"].endswith(".tar.gz")} == kept_s3
    for path in backups.rglob("*.tar.gz"):
        key = path.relative_to(backups).as_posix()
        run_id, _ = _run_id_in(path, tmp_path / "kept" / path.name)
        assert run_id == str(by_key.get((local["id"], key), last))
    # The runs alternated between the two processes (host:pid: a worker that starts
    # afresh when idle, worker/service.py `grown`, keeps its pid and takes a new id).
    processes = [str(ran_on[run_id]).rsplit(":", 1)[0] for run_id in run_ids]
    assert len(set(processes)) == 2, processes
    assert all(a != b for a, b in zip(processes, processes[1:], strict=False)), processes
    remove_bucket(moto_s3, bucket)
