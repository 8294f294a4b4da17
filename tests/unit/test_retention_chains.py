"""Retention over incremental chains (issue 17): rules count points in time, and no
kept point ever loses an archive it needs.

A point is one backup run, full or incremental; an incremental needs the archives of
its full and of the incrementals between. The property test draws random chains
(fulls and incrementals, some failed, some archives missing, chains listing every
backup they need or only the one they build on) and random policies.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mackuper.core.retention import (
    CHAIN_RULE,
    Backup,
    Decision,
    Policy,
    guaranteed_until,
    plan_retention,
    to_delete,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=20)


def weekly_full_daily_incremental(days: int, *, listed: str = "all") -> list[Backup]:
    """One backup a day from START (id 1 first), a full every seventh day.

    `listed` "all": an incremental names its full and every incremental between;
    "parent": only the one it builds on.
    """
    backups: list[Backup] = []
    for index in range(days):
        run_id = index + 1
        if index % 7 == 0:
            needs: frozenset[int] = frozenset()
        elif listed == "all":
            needs = frozenset(range(run_id - index % 7, run_id))
        else:
            needs = frozenset({run_id - 1})
        backups.append(
            Backup(
                id=run_id, finished_at=START + timedelta(days=index), successful=True, needs=needs
            )
        )
    return backups


def kept(decisions: list[Decision]) -> set[int]:
    return {decision.backup.id for decision in decisions if decision.keep}


def test_keep_last_keeps_the_full_and_incrementals_the_newest_points_build_on() -> None:
    # Runs 1 and 8 and 15 are fulls; 16..18 build on 15.
    decisions = plan_retention(weekly_full_daily_incremental(18), Policy(keep_last=2), NOW)
    assert kept(decisions) == {15, 16, 17, 18}
    by_id = {decision.backup.id: decision for decision in decisions}
    assert by_id[15].reasons == ("needed by runs 18, 17 and 16",)
    assert by_id[15].kept_for_chain_only
    assert by_id[16].needed_by == (18, 17)
    assert by_id[14].needed_by == ()
    assert by_id[17].reasons == ("one of the last 2", "needed by run 18")
    assert not by_id[17].kept_for_chain_only
    assert not by_id[18].kept_for_chain_only


def test_a_chain_that_lists_only_the_parent_is_followed_to_its_full() -> None:
    decisions = plan_retention(
        weekly_full_daily_incremental(18, listed="parent"), Policy(keep_last=1), NOW
    )
    assert kept(decisions) == {15, 16, 17, 18}


def test_gfs_counts_points_not_chains() -> None:
    # Weekly slots go to the newest point of each ISO week, incrementals included:
    # each keeps its own chain back to that week's full.
    backups = weekly_full_daily_incremental(21)
    weekly = {
        decision.backup.id
        for decision in plan_retention(backups, Policy(keep_weekly=2), NOW)
        if any(reason.startswith("weekly") for reason in decision.reasons)
    }
    assert len(weekly) == 2
    needed = set().union(*(backup.needs for backup in backups if backup.id in weekly))
    assert kept(plan_retention(backups, Policy(keep_weekly=2), NOW)) == weekly | needed


def test_a_broken_chain_is_not_the_newest_successful_backup() -> None:
    # Full 8 is gone: 9 and 10 cannot be restored whole; the newest whole point is 7.
    backups = [backup for backup in weekly_full_daily_incremental(10) if backup.id != 8]
    decisions = plan_retention(backups, Policy(keep_days=1), NOW)
    by_id = {decision.backup.id: decision for decision in decisions}
    assert by_id[10].missing == (8,)
    assert by_id[9].missing == (8,)
    assert by_id[7].missing == ()
    assert "newest successful backup" in by_id[7].reasons
    assert kept(decisions) == {1, 2, 3, 4, 5, 6, 7}
    assert not by_id[10].keep


def test_a_damaged_full_breaks_the_chain_on_it() -> None:
    backups = [
        replace(backup, damaged=backup.id == 8) for backup in weekly_full_daily_incremental(10)
    ]
    decisions = plan_retention(backups, Policy(keep_last=1), NOW)
    by_id = {decision.backup.id: decision for decision in decisions}
    assert by_id[10].missing == (8,)
    assert "newest successful backup" in by_id[7].reasons
    assert kept(decisions) == {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}


def test_full_only_backups_are_planned_as_before() -> None:
    backups = [
        Backup(id=run_id, finished_at=START + timedelta(days=run_id), successful=run_id != 5)
        for run_id in range(1, 11)
    ]
    decisions = plan_retention(backups, Policy(keep_last=2, keep_weekly=1), NOW)
    assert all(decision.needed_by == () and decision.missing == () for decision in decisions)
    assert all(not reason.startswith(CHAIN_RULE) for d in decisions for reason in d.reasons)


def test_an_incremental_keeps_its_full_locked_as_long_as_itself() -> None:
    backups = weekly_full_daily_incremental(3)
    promised = guaranteed_until(backups, Policy(keep_days=30), NOW)
    assert promised[1] == promised[3] == backups[2].finished_at + timedelta(days=30)
    assert promised[2] == promised[3]


# ---- the property -------------------------------------------------------------------

GAPS = [
    timedelta(minutes=7),
    timedelta(hours=5),
    timedelta(days=1),
    timedelta(days=1, hours=3),
    timedelta(days=6),
    timedelta(days=9),
    timedelta(days=33),
]
"""Gaps between points: several a day, daily, across ISO weeks and months."""


@st.composite
def chains(draw: st.DrawFn) -> list[Backup]:
    """The stored backups of a job with random chains; some archives missing."""
    count = draw(st.integers(min_value=0, max_value=40))
    run_ids = draw(st.permutations(range(1, count + 1)))
    moment = draw(
        st.datetimes(
            min_value=datetime(2024, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
            max_value=datetime(2026, 1, 1),  # noqa: DTZ001
            timezones=st.just(UTC),
        )
    )
    full_chance = draw(st.sampled_from([0.05, 0.2, 0.5]))
    parent_only = draw(st.booleans())
    backups: list[Backup] = []
    chain: list[Backup] = []
    closure: dict[int, frozenset[int]] = {}
    for index in range(count):
        moment = min(moment + draw(st.sampled_from(GAPS)), NOW)
        run_id = run_ids[index]
        full = not chain or draw(st.floats(min_value=0, max_value=1)) < full_chance
        if full:
            chain = []
            needs: frozenset[int] = frozenset()
            closure[run_id] = frozenset()
        else:
            # Usually the newest point; an older one when a run's state was not kept.
            parent = draw(st.sampled_from(chain[-3:]))
            closure[run_id] = closure[parent.id] | {parent.id}
            needs = frozenset({parent.id}) if parent_only else closure[run_id]
        backup = Backup(
            id=run_id,
            finished_at=moment,
            successful=draw(st.sampled_from([True, True, True, False])),
            in_use=draw(st.sampled_from([False] * 9 + [True])),
            imported=draw(st.sampled_from([False] * 4 + [True])),
            needs=needs,
            damaged=draw(st.sampled_from([False] * 9 + [True])),
        )
        backups.append(backup)
        chain.append(backup)
    gone = draw(st.sets(st.sampled_from(run_ids), max_size=4)) if run_ids else set()
    return [backup for backup in backups if backup.id not in gone]


optional_count = st.one_of(st.none(), st.integers(min_value=1, max_value=12))
policies = st.builds(
    Policy,
    keep_days=optional_count,
    keep_last=optional_count,
    keep_daily=optional_count,
    keep_weekly=optional_count,
    keep_monthly=optional_count,
    keep_yearly=optional_count,
)


def broken(backup: Backup, by_id: dict[int, Backup]) -> set[int]:
    """What `backup` needs that is gone or damaged."""
    return {
        run_id for run_id in needed(backup, by_id) if run_id not in by_id or by_id[run_id].damaged
    }


def needed(backup: Backup, by_id: dict[int, Backup]) -> set[int]:
    """Every run id `backup` needs, stored or not (followed through those stored)."""
    found: set[int] = set()
    pending = list(backup.needs)
    while pending:
        run_id = pending.pop()
        if run_id in found:
            continue
        found.add(run_id)
        if run_id in by_id:
            pending.extend(by_id[run_id].needs)
    return found


@settings(max_examples=400, deadline=None)
@given(backups=chains(), policy=policies)
def test_no_kept_point_loses_an_archive_it_needs(backups: list[Backup], policy: Policy) -> None:
    decisions = plan_retention(backups, policy, NOW)
    by_id = {backup.id: backup for backup in backups}
    keep = kept(decisions)
    doomed = {backup.id for backup in to_delete(decisions)}
    assert keep | doomed == set(by_id) and not keep & doomed

    # No kept point loses an archive it needs: all it needs that is stored stays.
    for run_id in keep:
        assert needed(by_id[run_id], by_id) & set(by_id) <= keep, run_id

    # The newest good point (successful, every needed backup stored and sound) is kept.
    good = [
        backup
        for backup in backups
        if backup.successful and not backup.damaged and not broken(backup, by_id)
    ]
    if good:
        newest = max(good, key=lambda backup: (backup.finished_at, backup.id))
        assert newest.id in keep

    # Nothing is kept for no reason: a backup kept only for a chain is needed by a
    # point the rules keep, and each decision names the missing part of its chain.
    for decision in decisions:
        assert decision.missing == tuple(sorted(broken(decision.backup, by_id)))
        users = {run_id for run_id in keep if decision.backup.id in needed(by_id[run_id], by_id)}
        assert set(decision.needed_by) == users
        if decision.kept_for_chain_only:
            assert users


@settings(max_examples=200, deadline=None)
@given(backups=chains(), policy=policies)
def test_rules_count_points_as_if_each_were_a_full(backups: list[Backup], policy: Policy) -> None:
    """The rules keep the same points as they would keep of full backups made at the
    same times (with 'successful' meaning 'restorable whole'); chains only add."""
    by_id = {backup.id: backup for backup in backups}
    as_fulls = [
        replace(
            backup,
            needs=frozenset(),
            successful=backup.successful and not backup.damaged and not broken(backup, by_id),
            damaged=False,
        )
        for backup in backups
    ]
    by_rules = kept(plan_retention(as_fulls, policy, NOW))
    with_chains = plan_retention(backups, policy, NOW)
    assert {
        decision.backup.id
        for decision in with_chains
        if decision.keep and not decision.kept_for_chain_only
    } == by_rules


@settings(max_examples=200, deadline=None)
@given(backups=chains(), policy=policies)
def test_a_needed_backup_is_promised_as_long_as_the_points_that_need_it(
    backups: list[Backup], policy: Policy
) -> None:
    promised = guaranteed_until(backups, policy, NOW)
    by_id = {backup.id: backup for backup in backups}
    for backup in backups:
        for run_id in needed(backup, by_id) & set(by_id):
            assert promised[run_id] >= promised[backup.id]
