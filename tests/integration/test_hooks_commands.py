"""Pre- and post-backup commands: order, environment, timeout kill, failure policies."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mackuper.runtime import Runtime
from tests.integration.notify_helpers import assert_archive_matches, make_job, run_job, run_log
from tests.trees import make_small_tree

pytestmark = pytest.mark.integration


def _hooks(pre: str | None = None, post: str | None = None, **policy: object) -> dict[str, object]:
    hooks: dict[str, object] = {}
    if pre is not None:
        hooks["pre"] = {
            "command": pre,
            "timeout": policy.get("pre_timeout", 30),
            "on_failure": policy.get("pre_policy", "abort"),
        }
    if post is not None:
        hooks["post"] = {
            "command": post,
            "timeout": 30,
            "on_failure": policy.get("post_policy", "warn"),
        }
    return hooks


def test_pre_runs_before_the_archive_and_post_after_with_the_outcome_in_its_environment(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MACKUPER_MASTER_KEY", "never-handed-to-commands")
    source = make_small_tree(tmp_path / "source")
    out = tmp_path / "out"
    trace = tmp_path / "trace.txt"
    pre = (
        f'echo "pre $MACKUPER_HOOK $MACKUPER_JOB_NAME $MACKUPER_RUN_ID'
        f' archives=$(find {out} -name "*.tar.gz" | wc -l)" >> {trace}; echo dumped the database'
    )
    post = (
        f'echo "post $MACKUPER_STATUS size=$MACKUPER_SIZE files=$MACKUPER_FILES'
        f" archive=$MACKUPER_ARCHIVE sha=[$MACKUPER_SHA256] b3=$MACKUPER_BLAKE3"
        f' b3sum=$(find {out} -name "$MACKUPER_ARCHIVE" -exec b3sum --no-names {{}} \\;)'
        f" error=[$MACKUPER_ERROR]"
        f' key=[${{MACKUPER_MASTER_KEY:-}}]" >> {trace}'
    )
    job_id = make_job(runtime, source, [out], hooks=_hooks(pre, post))

    run = run_job(runtime, job_id)

    assert run.status == "success", run.error
    assert_archive_matches(out, source, tmp_path / "extracted")
    first, second = trace.read_text().splitlines()
    assert first == f"pre pre Home files {run.id} archives=0"
    assert second == (
        f"post success size={run.bytes_written} files={run.files_done}"
        f" archive={run.archive_name} sha=[] b3={run.blake3} b3sum={run.blake3} error=[] key=[]"
    )
    assert run.sha256 is None and run.blake3 is not None and len(run.blake3) == 64
    log = run_log(runtime, run.id)
    pre_output = log.index("info: [pre] dumped the database")
    writing = next(i for i, line in enumerate(log) if line.startswith("info: writing "))
    finished = log.index("info: finished: success")
    post_done = next(i for i, line in enumerate(log) if "post-backup command finished" in line)
    assert pre_output < writing < finished < post_done


def test_post_command_sees_a_failed_run_and_its_error(runtime: Runtime, tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    post = f'echo "$MACKUPER_STATUS|$MACKUPER_ERROR|$MACKUPER_ARCHIVE" > {trace}'
    job_id = make_job(runtime, tmp_path / "missing", [tmp_path / "out"], hooks=_hooks(post=post))

    run = run_job(runtime, job_id)

    assert run.status == "failed"
    assert trace.read_text().strip() == f"failed|{run.error}|"
    assert "does not exist" in (run.error or "")


def test_pre_command_over_its_timeout_is_killed_with_its_children_and_aborts(
    runtime: Runtime, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    pid_file = tmp_path / "child.pid"
    pre = f"sleep 60 & echo $! > {pid_file}; echo waiting; wait"
    job_id = make_job(runtime, source, [tmp_path / "out"], hooks=_hooks(pre, pre_timeout=1))

    started = time.monotonic()
    run = run_job(runtime, job_id)

    assert time.monotonic() - started < 15
    assert run.status == "failed"
    assert run.error == (
        "the pre-backup command timed out after 1 s and was killed; nothing was backed up"
    )
    child = int(pid_file.read_text())
    assert not _alive(child)
    assert not list((tmp_path / "out").rglob("*.tar.gz"))
    assert "info: [pre] waiting" in run_log(runtime, run.id)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


def test_failing_pre_command_with_abort_policy_stops_the_backup(
    runtime: Runtime, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    job_id = make_job(
        runtime, source, [tmp_path / "out"], hooks=_hooks("echo no database >&2; exit 3")
    )

    run = run_job(runtime, job_id)

    assert run.status == "failed"
    assert run.error == "the pre-backup command exited with status 3; nothing was backed up"
    assert not list((tmp_path / "out").rglob("*.tar.gz"))
    log = run_log(runtime, run.id)
    assert "info: [pre] no database" in log
    assert "error: pre-backup command exited with status 3" in log


def test_failing_pre_command_with_warn_policy_backs_up_and_ends_as_warning(
    runtime: Runtime, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    job_id = make_job(
        runtime, source, [tmp_path / "out"], hooks=_hooks("exit 2", pre_policy="warn")
    )

    run = run_job(runtime, job_id)

    assert run.status == "warning"
    assert run.error == "the pre-backup command exited with status 2"
    assert_archive_matches(tmp_path / "out", source, tmp_path / "extracted")


def test_failing_post_command_turns_a_success_into_a_warning(
    runtime: Runtime, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    job_id = make_job(runtime, source, [tmp_path / "out"], hooks=_hooks(post="exit 4"))

    run = run_job(runtime, job_id)

    assert run.status == "warning"
    assert run.error == "the post-backup command exited with status 4"
    assert_archive_matches(tmp_path / "out", source, tmp_path / "extracted")
