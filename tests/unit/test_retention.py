"""Retention as a pure function: tables of dates, and the one property that matters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mackuper.core.retention import Backup, Policy, RetentionError, plan_retention, to_delete

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def daily(count: int, *, failed: set[int] = frozenset(), hour: int = 3) -> list[Backup]:  # type: ignore[assignment]
    """One backup a day for `count` days before NOW; id 1 is the newest."""
    return [
        Backup(
            id=index,
            finished_at=(NOW - timedelta(days=index)).replace(hour=hour),
            successful=index not in failed,
        )
        for index in range(1, count + 1)
    ]


def deleted_ids(backups: list[Backup], policy: Policy, zone: ZoneInfo | None = None) -> set[int]:
    decisions = plan_retention(backups, policy, NOW, zone or UTC)
    return {backup.id for backup in to_delete(decisions)}


@pytest.mark.parametrize(
    ("policy", "expected_deleted"),
    [
        (Policy(), set()),
        (Policy(keep_days=7), set(range(7, 31))),
        (Policy(keep_last=3), set(range(4, 31))),
        (Policy(keep_last=3, keep_days=5), set(range(5, 31))),
        # 2026-06-14 is a Sunday: ISO weeks end on ids 1, 8, 15, 22, 29.
        (Policy(keep_weekly=3), set(range(1, 31)) - {1, 8, 15}),
        (Policy(keep_daily=2, keep_weekly=2), set(range(1, 31)) - {1, 2, 8}),
        # Months: June (ids 1..14), May (15..30): the newest of each.
        (Policy(keep_monthly=12), set(range(1, 31)) - {1, 15}),
        (Policy(keep_yearly=1), set(range(2, 31))),
    ],
    ids=["empty", "days", "last", "last+days", "weekly", "daily+weekly", "monthly", "yearly"],
)
def test_retention_table_of_daily_backups(policy: Policy, expected_deleted: set[int]) -> None:
    assert deleted_ids(daily(30), policy) == expected_deleted


def test_retention_keeps_newest_success_when_all_are_old() -> None:
    backups = [
        Backup(id=1, finished_at=NOW - timedelta(days=100), successful=True),
        Backup(id=2, finished_at=NOW - timedelta(days=200), successful=True),
    ]
    decisions = plan_retention(backups, Policy(keep_days=7), NOW)
    assert [(d.backup.id, d.keep) for d in decisions] == [(1, True), (2, False)]
    assert decisions[0].reasons == ("newest successful backup",)


def test_retention_keeps_newest_success_behind_newer_warnings() -> None:
    backups = daily(5, failed={1, 2})
    assert deleted_ids(backups, Policy(keep_last=1)) == {2, 4, 5}


def test_retention_never_deletes_a_backup_in_use() -> None:
    backups = [
        *daily(3),
        Backup(id=9, finished_at=NOW - timedelta(days=50), successful=True, in_use=True),
    ]
    decisions = plan_retention(backups, Policy(keep_last=1), NOW)
    kept = {d.backup.id: d.reasons for d in decisions if d.keep}
    assert kept == {
        1: ("newest successful backup", "one of the last 1"),
        9: ("in use by a running task",),
    }


def test_retention_counts_days_in_the_installation_zone() -> None:
    # 23:30 UTC on the 14th is already the 15th in Tokyo: both fall on one Tokyo day.
    backups = [
        Backup(id=1, finished_at=datetime(2026, 6, 15, 1, 0, tzinfo=UTC), successful=True),
        Backup(id=2, finished_at=datetime(2026, 6, 14, 23, 30, tzinfo=UTC), successful=True),
        Backup(id=3, finished_at=datetime(2026, 6, 14, 10, 0, tzinfo=UTC), successful=True),
    ]
    assert deleted_ids(backups, Policy(keep_daily=2)) == {3}
    assert deleted_ids(backups, Policy(keep_daily=2), ZoneInfo("Asia/Tokyo")) == {2}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"keep_days": 0}, "Days to keep"),
        ({"keep_last": -1}, "Backups to keep"),
        ({"keep_daily": "7"}, "Daily backups"),
        ({"keep_weekly": True}, "Weekly backups"),
        ({"keep_yearly": 10**9}, "Yearly backups"),
    ],
)
def test_retention_policy_rejects_bad_numbers(data: dict[str, object], message: str) -> None:
    with pytest.raises(RetentionError, match=message):
        Policy.from_json(data)


def test_retention_policy_round_trips_through_json() -> None:
    policy = Policy.from_json({"keep_days": 30, "keep_monthly": 12, "keep_last": ""})
    assert policy.to_json() == {"keep_days": 30, "keep_monthly": 12}
    assert Policy.from_json(policy.to_json()) == policy


optional_count = st.one_of(st.none(), st.integers(min_value=1, max_value=20))
policies = st.builds(
    Policy,
    keep_days=optional_count,
    keep_last=optional_count,
    keep_daily=optional_count,
    keep_weekly=optional_count,
    keep_monthly=optional_count,
    keep_yearly=optional_count,
)
backup_lists = st.lists(
    st.builds(
        Backup,
        id=st.integers(min_value=1, max_value=10**6),
        finished_at=st.datetimes(
            min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
            max_value=datetime(2026, 6, 15),  # noqa: DTZ001
            timezones=st.just(UTC),
        ),
        successful=st.booleans(),
        in_use=st.booleans(),
    ),
    max_size=60,
    unique_by=lambda backup: backup.id,
)


@settings(max_examples=200, deadline=None)
@given(backups=backup_lists, policy=policies)
def test_retention_never_deletes_the_newest_successful_backup(
    backups: list[Backup], policy: Policy
) -> None:
    doomed = to_delete(plan_retention(backups, policy, NOW))
    successes = [backup for backup in backups if backup.successful]
    if successes:
        newest = max(successes, key=lambda backup: (backup.finished_at, backup.id))
        assert newest not in doomed
    assert not any(backup.in_use for backup in doomed)
    if policy.is_empty:
        assert doomed == []


def test_imported_backups_never_push_out_backups_made_here() -> None:
    """Three 'newer' imported backups (say, manifests someone planted) and a keep-last-2
    policy: the two newest made here stay; the imported ones are judged as usual."""
    own = daily(4)
    planted = [
        Backup(id=100 + n, finished_at=NOW - timedelta(hours=n), successful=True, imported=True)
        for n in (1, 2, 3)
    ]
    decisions = plan_retention([*own, *planted], Policy(keep_last=2), NOW)
    kept = {decision.backup.id for decision in decisions if decision.keep}
    assert kept == {101, 102, 1, 2}
    reasons = {decision.backup.id: decision.reasons for decision in decisions}
    assert "kept: imported backups never push out backups made here" in reasons[1]
    assert deleted_ids([*own, *planted], Policy(keep_last=2)) == {3, 4, 103}


def test_after_a_lost_database_imported_backups_follow_the_policy_as_usual() -> None:
    imported = [Backup(b.id, b.finished_at, b.successful, imported=True) for b in daily(6)]
    assert deleted_ids(imported, Policy(keep_last=2)) == {3, 4, 5, 6}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2000), st.booleans()), min_size=1, max_size=25),
    st.integers(1, 5),
)
def test_property_an_own_backup_kept_alone_is_kept_with_any_imported_ones(
    ages: list[tuple[int, bool]], keep_last: int
) -> None:
    backups = [
        Backup(id=i, finished_at=NOW - timedelta(hours=age), successful=True, imported=imported)
        for i, (age, imported) in enumerate(ages)
    ]
    own = [backup for backup in backups if not backup.imported]
    alone = {d.backup.id for d in plan_retention(own, Policy(keep_last=keep_last), NOW) if d.keep}
    together = {
        d.backup.id for d in plan_retention(backups, Policy(keep_last=keep_last), NOW) if d.keep
    }
    assert alone <= together
