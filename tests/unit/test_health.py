"""When a scheduled job is overdue: the first fire time after its last good backup,
once an hour (the slack) has passed (issue 15, item 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mackuper.runs.health import OVERDUE_SLACK, due_since


@pytest.mark.parametrize(
    ("last_good", "now", "due"),
    [
        # Daily at 02:00 UTC, last good backup yesterday 02:00: due today 02:00.
        ("2026-11-29T02:00", "2026-11-30T02:30", None),  # within the slack
        ("2026-11-29T02:00", "2026-11-30T03:30", "2026-11-30T02:00"),
        ("2026-11-30T02:00", "2026-11-30T23:00", None),  # today's went well
        (None, "2026-11-28T12:00", None),  # created after the first fire time
        (None, "2026-11-29T05:00", "2026-11-29T02:00"),
    ],
)
def test_due_since_is_the_first_fire_time_after_the_last_good_backup_once_past_the_slack(
    last_good: str | None, now: str, due: str | None
) -> None:
    def moment(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    created = moment("2026-11-28T10:00")
    found = due_since(
        "0 2 * * *", "UTC", moment(last_good) if last_good else None, created, moment(now)
    )
    assert found == (moment(due) if due else None)
    assert timedelta(hours=1) == OVERDUE_SLACK
