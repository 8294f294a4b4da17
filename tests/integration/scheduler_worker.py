"""A worker process for test_scheduler_two_workers: one Worker on a fast test clock.

    python -m tests.integration.scheduler_worker WORKER_ID SECONDS_PER_MINUTE END

It prints "ready" once connected, then reads EPOCH (a Unix time) from stdin.

The environment carries DATABASE_URL, MACKUPER_DATA_DIR and MACKUPER_MASTER_KEY.
Test time is 2026-01-01 00:00 UTC at real time EPOCH and runs one minute per
SECONDS_PER_MINUTE real seconds, the same mapping in every process, so several
processes see each tick at the same moment and race for it. The executor is a
fake that records which worker ran the run; the scheduling, claiming and the
database are real.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from mackuper.models import Run, RunLog, RunStatus
from mackuper.runs.outcome import Outcome
from mackuper.runtime import Runtime, open_runtime
from mackuper.worker.service import Worker

TEST_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    worker_id, seconds_per_minute, end = sys.argv[1:4]
    scale = float(seconds_per_minute)
    stop_at = TEST_EPOCH + timedelta(minutes=float(end))

    def clock() -> datetime:
        return TEST_EPOCH + timedelta(minutes=(time.time() - real_start) / scale)

    def execute(runtime: Runtime, run_id: int, stopping: threading.Event) -> Outcome:
        with runtime.sessions.begin() as session:
            session.add(RunLog(run_id=run_id, level="info", message=f"executed by {worker_id}"))
            run = session.get_one(Run, run_id)
            run.status = RunStatus.SUCCESS.value
            run.finished_at = datetime.now(UTC)
        return Outcome(RunStatus.SUCCESS, None)

    runtime = open_runtime(migrate=False)
    worker = Worker(runtime, worker_id, clock=clock, execute=execute)
    worker.heartbeat()
    print("ready", flush=True)
    real_start = float(sys.stdin.readline())
    try:
        while clock() < stop_at:
            worker.step()
            time.sleep(0.02)
    finally:
        worker.shutdown()
        runtime.engine.dispose()


if __name__ == "__main__":
    main()
