"""The run kinds' registry and the one way a schedule's tick is taken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mackuper.models import RunKind
from mackuper.runs.enqueue import take_due_tick
from mackuper.runs.lifecycle import cli_process, cli_worker_id
from mackuper.runs.registry import TASKS

HOUR = timedelta(hours=1)
ANCHOR = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def test_every_run_kind_has_exactly_one_task_that_names_it() -> None:
    assert set(TASKS) == set(RunKind)
    for kind, task in TASKS.items():
        assert task.kind is kind
        assert task.title and task.abandoned


def test_only_backups_ping() -> None:
    assert {kind for kind, task in TASKS.items() if task.pings} == {RunKind.BACKUP}


@pytest.mark.parametrize(
    ("now", "moved", "expected_tick", "expected_moves"),
    [
        # No tick since the anchor: nothing to move, nothing to run.
        (ANCHOR + timedelta(minutes=20), True, None, []),
        # A tick is due and this process moved the anchor to it: it runs the tick.
        (ANCHOR + HOUR, True, ANCHOR + timedelta(minutes=30), [ANCHOR + timedelta(minutes=30)]),
        # Another process moved the anchor first: that one runs the tick.
        (ANCHOR + HOUR, False, None, [ANCHOR + timedelta(minutes=30)]),
    ],
)
def test_a_due_tick_is_run_only_by_the_process_that_moves_the_anchor(
    now: datetime, moved: bool, expected_tick: datetime | None, expected_moves: list[datetime]
) -> None:
    moves: list[datetime] = []

    def move(new_anchor: datetime) -> bool:
        moves.append(new_anchor)
        return moved

    tick = take_due_tick("0 * * * *", "UTC", ANCHOR, now, HOUR, move)

    assert tick == expected_tick
    assert moves == expected_moves


def test_the_commands_worker_id_names_its_host_and_process() -> None:
    host, pid = cli_process(cli_worker_id()) or ("", 0)
    assert pid > 0 and host
    assert cli_process("myhost:123:abcdef") is None
    assert cli_process("cli:my:host:x") is None
