"""A channel or ping that cannot be reached never fails or stalls a backup, and is logged."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mackuper.notify import dispatch
from mackuper.runtime import Runtime
from tests.integration.notify_helpers import (
    add_channel,
    assert_archive_matches,
    make_job,
    run_job,
    run_log,
)
from tests.servers.ports import LOOPBACK, free_port
from tests.trees import make_small_tree

pytestmark = pytest.mark.integration


def test_unreachable_channel_and_pings_leave_a_successful_backup_and_log_lines(
    runtime: Runtime, tmp_path: Path
) -> None:
    source = make_small_tree(tmp_path / "source")
    closed = free_port()
    add_channel(
        runtime, "ops chat", f"json://{LOOPBACK}:{closed}/hook/tok3n-abcdef", {"success": True}
    )
    job_id = make_job(
        runtime,
        source,
        [tmp_path / "out"],
        secrets={
            "ping_start": f"http://{LOOPBACK}:{closed}/ping/uuid-1234/start",
            "ping_success": f"http://{LOOPBACK}:{closed}/ping/uuid-1234",
        },
        notifications={"events": {"success": True}},
    )
    add_channel(runtime, "not apprise", "nosuchscheme://whatever", {"success": True})

    run = run_job(runtime, job_id)

    assert run.status == "success", run.error
    assert_archive_matches(tmp_path / "out", source, tmp_path / "extracted")
    log = run_log(runtime, run.id)
    failures = [line for line in log if "notification failed" in line]
    assert "warning: notification failed: start ping: the server could not be reached" in (
        "\n".join(failures)
    )
    assert any(line.startswith("warning: notification failed: success ping: ") for line in log)
    assert (
        "warning: notification failed: channel 'not apprise': the URL is not a valid Apprise URL"
        in log
    )
    assert any("channel 'ops chat': A Connection error occurred" in line for line in log)
    assert not any("tok3n" in line or "uuid-1234" in line for line in log)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_channel_that_never_answers_is_given_up_after_the_deadline(
    runtime: Runtime, tmp_path: Path, silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "DEADLINE", 1.0)
    source = make_small_tree(tmp_path / "source")
    add_channel(runtime, "stuck", f"json://{LOOPBACK}:{silent_server}/hook?rto=30")
    job_id = make_job(runtime, tmp_path / "missing", [tmp_path / "out"])

    started = time.monotonic()
    run = run_job(runtime, job_id)

    assert time.monotonic() - started < 10
    assert run.status == "failed"
    assert "warning: notification failed: channel 'stuck': no answer within 1 s" in run_log(
        runtime, run.id
    )
    assert source.exists()
