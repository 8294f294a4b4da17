"""Issue 19: how long retention promises to keep a backup, the date an Object Lock may hold
it to. Each tier's promise, and none for a GFS slot whose period still runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mackuper.core.retention import Backup, Policy, guaranteed_until, plan_retention

MONDAY_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def one(finished: datetime, backup_id: int = 1) -> Backup:
    return Backup(id=backup_id, finished_at=finished, successful=True)


def test_days_and_the_minimum_are_promised_from_the_backups_end() -> None:
    backup = one(MONDAY_NOON)
    promised = guaranteed_until([backup], Policy(keep_days=10), MONDAY_NOON, UTC, 3)
    assert promised == {1: MONDAY_NOON + timedelta(days=10)}
    promised = guaranteed_until([backup], Policy(keep_days=2), MONDAY_NOON, UTC, 3)
    assert promised == {1: MONDAY_NOON + timedelta(days=3)}
    # keep-last counts backups and promises no time: the minimum stands for it.
    assert guaranteed_until([backup], Policy(keep_last=5), MONDAY_NOON, UTC, 4) == {
        1: MONDAY_NOON + timedelta(days=4)
    }


def test_a_gfs_slot_promises_nothing_while_its_period_runs_then_count_periods() -> None:
    backup = one(MONDAY_NOON)
    policy = Policy(keep_daily=7, keep_weekly=4, keep_monthly=6, keep_yearly=2)
    same_day = MONDAY_NOON + timedelta(hours=6)
    assert guaranteed_until([backup], policy, same_day, UTC, 1) == {
        1: MONDAY_NOON + timedelta(days=1)
    }
    next_day = datetime(2026, 3, 3, 0, 0, 1, tzinfo=UTC)
    assert guaranteed_until([backup], Policy(keep_daily=7), next_day, UTC, 1) == {
        1: datetime(2026, 3, 9, tzinfo=UTC)
    }
    next_week = datetime(2026, 3, 9, 1, tzinfo=UTC)
    assert guaranteed_until([backup], policy, next_week, UTC, 1) == {
        1: datetime(2026, 3, 30, tzinfo=UTC)  # the week of 2 March plus 3 more weeks
    }
    april = datetime(2026, 4, 1, 1, tzinfo=UTC)
    assert guaranteed_until([backup], policy, april, UTC, 1) == {
        1: datetime(2026, 9, 1, tzinfo=UTC)  # March plus 5 more months
    }
    next_year = datetime(2027, 1, 1, 1, tzinfo=UTC)
    assert guaranteed_until([backup], policy, next_year, UTC, 1) == {
        1: datetime(2028, 1, 1, tzinfo=UTC)
    }


def test_only_the_newest_backup_of_a_period_holds_its_slot() -> None:
    early, late = one(MONDAY_NOON, 1), one(MONDAY_NOON + timedelta(hours=3), 2)
    tuesday = datetime(2026, 3, 3, 8, tzinfo=UTC)
    promised = guaranteed_until([early, late], Policy(keep_daily=3), tuesday, UTC, 1)
    assert promised == {
        1: MONDAY_NOON + timedelta(days=1),
        2: datetime(2026, 3, 5, tzinfo=UTC),
    }


def test_periods_are_counted_in_the_jobs_zone() -> None:
    zone = ZoneInfo("Europe/Berlin")
    late_evening = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    promised = guaranteed_until(
        [one(late_evening)], Policy(keep_daily=2), late_evening + timedelta(hours=1), zone, 0
    )
    assert promised == {1: datetime(2026, 3, 4, tzinfo=zone).astimezone(UTC)}


def test_retention_keeps_every_backup_until_its_promised_date() -> None:
    """The promise holds: a backup every 5 hours for 40 days, planned hour by hour, is
    never deleted before the date promised at any earlier moment."""
    policy = Policy(keep_days=2, keep_daily=5, keep_weekly=3, keep_monthly=2)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    backups: list[Backup] = []
    promised: dict[int, datetime] = {}
    for hour in range(0, 40 * 24):
        now = start + timedelta(hours=hour)
        if hour % 5 == 0:
            backups.append(one(now, len(backups) + 1))
        for decision in plan_retention(backups, policy, now):
            if not decision.keep:
                assert promised[decision.backup.id] <= now, decision.backup
        deleted = {d.backup.id for d in plan_retention(backups, policy, now) if not d.keep}
        backups = [backup for backup in backups if backup.id not in deleted]
        for backup_id, until in guaranteed_until(backups, policy, now, UTC, 0).items():
            promised[backup_id] = max(until, promised.get(backup_id, until))
