"""Issue 19, item 3: a backup of a corpus that ransomware overwrote is flagged, an alert
names the anomaly, and retention deletes nothing for the job until a person
acknowledges it; an ordinary change of 5% of the files is not flagged."""

from __future__ import annotations

import os
import random
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mackuper.models import Artifact, Job
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.notify_helpers import (  # noqa: F401 - fixtures
    HttpReceiver,
    add_channel,
    make_job,
    receiver_fixture,
    run_job,
    run_log,
)
from tests.trees import file_hashes

pytestmark = pytest.mark.integration

WORDS = [
    "invoice",
    "ledger",
    "quarterly",
    "report",
    "budget",
    "meeting",
    "contract",
    "customer",
    "order",
]
FILES = 60


def write_corpus(root: Path) -> None:
    """60 documents of compressible text, about 2 MB in all."""
    generator = random.Random(19)
    for number in range(FILES):
        folder = root / f"dept-{number % 6}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = (
            " ".join(generator.choice(WORDS) for _ in range(12)) + f" {generator.random()}\n"
            for _ in range(400)
        )
        (folder / f"doc-{number:03}.txt").write_text("".join(lines))


def stored_runs(runtime: Runtime, job_id: int) -> list[int]:
    with runtime.sessions() as session:
        return sorted(
            session.scalars(
                select(Artifact.run_id).where(Artifact.job_id == job_id, Artifact.state == "stored")
            )
        )


def assert_newest_archive_holds(out: Path, source: Path, scratch: Path) -> None:
    newest = max(out.rglob("*.tar.gz"), key=lambda path: path.stat().st_mtime_ns)
    with tarfile.open(newest) as archive:
        archive.extractall(scratch, filter="tar")
    assert file_hashes(scratch / str(source).lstrip("/")) == file_hashes(source)


def test_ransomware_is_flagged_and_stops_retention_until_acknowledged_but_5_percent_is_not(
    runtime: Runtime, api: ApiClient, receiver: HttpReceiver, tmp_path: Path
) -> None:
    source, out = tmp_path / "documents", tmp_path / "out"
    write_corpus(source)
    out.mkdir()
    job_id = make_job(runtime, source, [out])
    with runtime.sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(retention={"keep_last": 1}))
    add_channel(runtime, "ops", f"json://{receiver.url}/hook", {"warning": True})

    first = run_job(runtime, job_id)
    assert first.status == "success", first.error
    for path in sorted(source.rglob("*.txt"))[:: FILES // 3]:  # 3 of 60 files: 5%
        path.write_text(path.read_text().replace("invoice", "receipt"))
    second = run_job(runtime, job_id)
    assert second.status == "success", second.error
    assert not any("anomaly" in line for line in run_log(runtime, second.id))
    assert stored_runs(runtime, job_id) == [second.id]  # retention ran as usual

    for path in source.rglob("*.txt"):  # the simulated ransomware run
        path.write_bytes(os.urandom(path.stat().st_size))
    hit = run_job(runtime, job_id)
    assert hit.status == "warning"
    assert hit.error is not None
    assert "files changed: about 100% of the files kept" in hit.error
    assert "compression ratio jumped" in hit.error
    assert_newest_archive_holds(out, source, tmp_path / "hit")
    (alert,) = [hook for hook in receiver.webhooks() if hook["type"] == "warning"]
    assert "files changed" in alert["message"]
    assert "retention deletes nothing for this job" in alert["message"]
    assert stored_runs(runtime, job_id) == [second.id, hit.id]  # the good backup stays

    answer = api.call("GET", f"/api/jobs/{job_id}/anomaly").json["anomaly"]
    assert answer["run_id"] == hit.id
    assert any(finding.startswith("files changed") for finding in answer["findings"])

    # The next backup looks like the last one, but the job still waits for a person.
    again = run_job(runtime, job_id)
    assert again.status == "success", again.error
    assert stored_runs(runtime, job_id) == [second.id, hit.id, again.id]
    assert any("retention deletes nothing for job" in line for line in run_log(runtime, again.id))

    acknowledged = api.call("POST", f"/api/jobs/{job_id}/anomaly/acknowledge")
    assert acknowledged.status_code == 200, acknowledged.json
    assert acknowledged.json["anomaly"] == {"run_id": None, "findings": []}
    assert any(
        line.startswith("info: anomaly acknowledged by admin") for line in run_log(runtime, hit.id)
    )
    after = run_job(runtime, job_id)
    assert after.status == "success", after.error
    assert stored_runs(runtime, job_id) == [after.id]
