"""One lifecycle for every kind of run: a failing backup, restore, dry-run restore and
verification (run by a worker or by the `mackuper` command) are queued, claimed,
announced, wrapped in the job's commands and recorded the same way, and send the
same alerts to a real webhook receiver."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from mackuper.models import Artifact, ArtifactState, Run
from mackuper.runtime import Runtime
from mackuper.worker.service import Worker
from tests.conftest import ApiClient
from tests.integration.notify_helpers import (  # noqa: F401 - fixtures
    HttpReceiver,
    Request,
    add_channel,
    make_job,
    receiver_fixture,
    run_log,
)
from tests.integration.restore_support import ok
from tests.trees import make_small_tree

pytestmark = pytest.mark.integration

JOB = "Home files"


@dataclass
class Ended:
    run: Run
    log: list[str]
    requests: list[Request]
    commands: list[str]


def _commands(trace: Path) -> dict[str, object]:
    line = (
        '"$MACKUPER_HOOK kind=$MACKUPER_KIND run=$MACKUPER_RUN_ID'
        ' status=[${MACKUPER_STATUS:-}] error=[${MACKUPER_ERROR:-}]"'
    )
    return {
        "pre": {"command": f"echo {line} >> {trace}", "timeout": 30, "on_failure": "abort"},
        "post": {"command": f"echo {line} >> {trace}", "timeout": 30, "on_failure": "warn"},
    }


def _queue(api: ApiClient, kind: str, job_id: int, backup_id: int, target: Path) -> int:
    """Queue a run of `kind` as a person would, through the API."""
    if kind == "backup":
        return int(ok(api, "POST", f"/api/jobs/{job_id}/run")["run"]["id"])
    if kind == "verify":
        return int(ok(api, "POST", "/api/verify", {"artifact_id": backup_id})["run"]["id"])
    body = {
        "artifact_id": backup_id,
        "target": {"kind": "local", "path": str(target)},
        "dry_run": kind == "dry run",
    }
    return int(ok(api, "POST", "/api/restore", body)["run"]["id"])


def _claim_and_execute(runtime: Runtime, receiver: HttpReceiver, trace: Path, run_id: int) -> Ended:
    """What a worker does with a queued run, and everything the run left behind."""
    receiver.requests.clear()
    trace.write_text("")
    worker = Worker(runtime, worker_id="lifecycle-test")
    try:
        with runtime.sessions() as session:
            assert worker.claim(session, run_id)
        worker.execute(runtime, run_id, threading.Event())
    finally:
        worker.pool.shutdown()
    with runtime.sessions() as session:
        run = session.get_one(Run, run_id)
    commands = trace.read_text().splitlines()
    return Ended(run, run_log(runtime, run_id), list(receiver.requests), commands)


def _run_by_the_command(
    runtime: Runtime, receiver: HttpReceiver, trace: Path, data_dir: Path, *args: str
) -> Ended:
    """`mackuper ARGS` in its own process (no worker), and everything its run left behind."""
    receiver.requests.clear()
    trace.write_text("")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MACKUPER_")}
    environment["MACKUPER_DATA_DIR"] = str(data_dir)
    subprocess.run(
        [sys.executable, "-m", "mackuper", *args],
        env=environment,
        capture_output=True,
        timeout=120,
        check=False,
    )
    with runtime.sessions() as session:
        run = session.scalars(select(Run).order_by(Run.id.desc()).limit(1)).one()
    commands = trace.read_text().splitlines()
    return Ended(run, run_log(runtime, run.id), list(receiver.requests), commands)


def _as_backup(text: str, ended: Ended) -> str:
    """`text` with this run's kind, title, id, error and timings spelled as a backup's."""
    title = {"backup": "Backup", "restore": "Restore", "verify": "Verification"}[ended.run.kind]
    text = text.replace(ended.run.error or "-", "ERROR")
    text = re.sub(r"(run[= ]|#|/runs/)" + str(ended.run.id) + r"\b", r"\1N", text)
    text = re.sub(r"\d+\.\d s\b", "T s", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", text)
    return text.replace(title, "Backup").replace(ended.run.kind, "backup")


def _lifecycle_lines(ended: Ended) -> list[str]:
    """The run's log without its kind's own work (what it wrote or read)."""
    edges = ("started", "command", "[pre]", "[post]", "finished:")
    return [_as_backup(line, ended) for line in ended.log if any(e in line for e in edges)]


def test_failing_backup_restore_dry_run_and_verify_go_through_one_lifecycle(
    runtime: Runtime, api: ApiClient, receiver: HttpReceiver, tmp_path: Path, data_dir: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    storage = tmp_path / "storage"
    trace = tmp_path / "commands.txt"
    add_channel(runtime, "ops", f"json://{receiver.url}/hook", {"start": True, "failure": True})
    pings = {"ping_start": f"http://{receiver.url}/ping/start"}
    pings["ping_fail"] = f"http://{receiver.url}/ping/fail"
    job_id = make_job(runtime, source, [storage], hooks=_commands(trace), secrets=pings, name=JOB)
    first = _claim_and_execute(runtime, receiver, trace, _queue(api, "backup", job_id, 0, tmp_path))
    assert first.run.status == "success", first.run.error
    with runtime.sessions() as session:
        artifact = session.scalars(
            select(Artifact).where(Artifact.state == ArtifactState.STORED.value)
        ).one()
        artifact_id = artifact.id
    # Every kind now fails while it works: the source is gone, and so is the archive
    # (its catalog row and manifest stay, so restore and verify start).
    (storage / artifact.key).unlink()
    source.rename(tmp_path / "gone")

    ended = {
        kind: _claim_and_execute(
            runtime, receiver, trace, _queue(api, kind, job_id, artifact_id, tmp_path / "to")
        )
        for kind in ("backup", "restore", "dry run", "verify")
    }
    # The `mackuper` command runs its verification through the same lifecycle.
    ended["command verify"] = _run_by_the_command(
        runtime, receiver, trace, data_dir, "verify", str(artifact_id)
    )

    backup = ended["backup"]
    assert backup.run.status == "failed"
    assert "does not exist" in (backup.run.error or "")
    assert [run.run.kind for run in ended.values()] == [
        "backup",
        "restore",
        "restore",
        "verify",
        "verify",
    ]
    backup_hooks = [r.json() for r in backup.requests if r.path == "/hook"]
    for kind, run in ended.items():
        # Recorded the same way: status, error, times, and the log's lifecycle lines.
        assert run.run.status == "failed", kind
        assert run.run.error, kind
        assert run.run.started_at is not None and run.run.finished_at is not None, kind
        assert run.run.current_file is None, kind
        assert _lifecycle_lines(run) == _lifecycle_lines(backup), kind
        # The same pre and post commands, told how the run ended.
        assert [_as_backup(line, run) for line in run.commands] == [
            _as_backup(line, backup) for line in backup.commands
        ], kind
        # The same alerts: a start and a failure webhook with the same text.
        hooks = [request.json() for request in run.requests if request.path == "/hook"]
        assert [_as_backup(hook["title"], run) for hook in hooks] == [
            f"Mackuper: Backup {JOB!r} started",
            f"Mackuper: Backup {JOB!r} could not start",
        ], kind
        assert [_as_backup(hook["message"], run) for hook in hooks] == [
            _as_backup(hook["message"], backup) for hook in backup_hooks
        ], kind
        targets = 2 if kind == "backup" else 1  # the webhook, and for a backup its ping
        assert f"info: start alert sent to {targets} target(s)" in run.log, kind
        assert run.log[-1] == f"info: failure alert sent to {targets} target(s)", kind
    # A command learns which kind it runs around, and how the run ended.
    assert backup.commands == [
        f"pre kind=backup run={backup.run.id} status=[] error=[]",
        f"post kind=backup run={backup.run.id} status=[failed] error=[{backup.run.error}]",
    ]
    assert ended["verify"].commands[0] == f"pre kind=verify run={ended['verify'].run.id}" + (
        " status=[] error=[]"
    )
    # Pings watch backups only: a verification must not keep a job looking alive.
    assert sorted(r.path for r in backup.requests if r.path.startswith("/ping")) == [
        "/ping/fail",
        "/ping/start",
    ]
    for kind in ("restore", "dry run", "verify", "command verify"):
        assert not [r for r in ended[kind].requests if r.path.startswith("/ping")], kind
