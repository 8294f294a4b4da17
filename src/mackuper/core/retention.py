"""Retention: which backups to keep and which to delete, and why.

A pure function over a list of backups and a policy. Rules combine: a backup is
kept when any rule keeps it. Two protections hold whatever the policy says: the
newest successful backup is never deleted, nor a backup a running task uses.
An empty policy keeps everything.

Incremental chains: the rules count points in time (one backup is one point, full or
incremental), and then every backup a kept point needs (its full and the incrementals
between) is kept too, whatever the rules said of it, so no kept point ever loses an
archive it needs. A point whose chain is broken (a backup it needs is no longer
stored) cannot be restored whole: it is never the "newest successful backup" that is
protected, the newest whole one is. A backup a verification found damaged breaks
the chains that need it the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

PERIODS: dict[str, Callable[[datetime], Hashable]] = {
    "daily": lambda moment: moment.date(),
    "weekly": lambda moment: moment.isocalendar()[:2],
    "monthly": lambda moment: (moment.year, moment.month),
    "yearly": lambda moment: moment.year,
}
"""GFS period name -> the key of the period a local time falls in."""

FIELDS = ("keep_days", "keep_last", *(f"keep_{name}" for name in PERIODS))
LABELS = {
    "keep_days": "Days to keep",
    "keep_last": "Backups to keep",
    "keep_daily": "Daily backups to keep",
    "keep_weekly": "Weekly backups to keep",
    "keep_monthly": "Monthly backups to keep",
    "keep_yearly": "Yearly backups to keep",
}
LIMIT = 100_000


class RetentionError(ValueError):
    """The retention policy is not valid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Policy:
    keep_days: int | None = None
    """Keep backups younger than this many days (the original Mackuper rule)."""
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Policy:
        """The policy in a job's `retention` JSON; RetentionError naming the bad field."""
        data = data or {}
        values: dict[str, int | None] = {}
        for name in FIELDS:
            raw = data.get(name)
            if raw in (None, ""):
                values[name] = None
                continue
            if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= LIMIT:
                raise RetentionError(
                    name, f"{LABELS[name]} must be a whole number from 1 to {LIMIT}, or empty"
                )
            values[name] = raw
        return cls(**values)

    def to_json(self) -> dict[str, int]:
        return {name: value for name in FIELDS if (value := getattr(self, name)) is not None}

    @property
    def is_empty(self) -> bool:
        return not self.to_json()


@dataclass(frozen=True)
class Backup:
    id: int
    """The run that made it; its artifacts at every destination go together."""
    finished_at: datetime
    successful: bool
    """Ended as `success` (a `warning` backup may miss files)."""
    in_use: bool = False
    """A running task (restore, verify) reads it."""
    imported: bool = False
    """Came back from a manifest at a destination (catalog import), not made here."""
    needs: frozenset[int] = frozenset()
    """The earlier backups (run ids) whose archives restoring this point reads: for an
    incremental its full and the incrementals between (or only the one it builds on:
    the rest is followed from there); empty for a full."""
    damaged: bool = False
    """A verification found its archive changed or gone at every destination: neither
    it nor a point that needs it can be restored whole."""


@dataclass(frozen=True)
class Decision:
    backup: Backup
    keep: bool
    reasons: tuple[str, ...] = field(default=())
    needed_by: tuple[int, ...] = ()
    """The kept points (run ids, newest first) that need this backup's archives."""
    missing: tuple[int, ...] = ()
    """Backups this point needs that are no longer stored, or damaged: its chain is broken."""

    @property
    def kept_for_chain_only(self) -> bool:
        """Kept only because a kept point needs it: the rules alone would delete it."""
        return self.keep and all(reason.startswith(CHAIN_RULE) for reason in self.reasons)


IMPORTED_RULE = "kept: imported backups never push out backups made here"
CHAIN_RULE = "needed by"
"""Starts the reason of a backup kept because a kept point needs its archives."""


def plan_retention(
    backups: Sequence[Backup], policy: Policy, now: datetime, zone: tzinfo = UTC
) -> list[Decision]:
    """One decision per backup, newest first; GFS periods are counted in `zone`.

    A backup made here is never deleted because of imported ones: it is kept
    whenever the policy would keep it among the backups made here alone. Imported
    backups still fill slots (after a lost database every backup is imported, and
    the policy applies to them as usual), but a manifest someone put at a
    destination cannot push this installation's own backups out.

    Then every backup that a kept point needs is kept (reason "needed by run N"), and
    a point whose chain is broken names the missing backups in `missing`.
    """
    chains = _Chains(backups)
    decisions = _plan(backups, policy, now, zone, chains.whole)
    own = [backup for backup in backups if not backup.imported]
    if len(own) != len(backups) and own:
        kept_among_own = {
            decision.backup.id
            for decision in _plan(own, policy, now, zone, chains.whole)
            if decision.keep
        }
        decisions = [
            Decision(decision.backup, True, (*decision.reasons, IMPORTED_RULE))
            if not decision.keep and decision.backup.id in kept_among_own
            else decision
            for decision in decisions
        ]
    return chains.keep_needed(decisions)


class _Chains:
    """Which backups each point needs, followed through the chain, among those stored."""

    def __init__(self, backups: Sequence[Backup]) -> None:
        self.stored = {backup.id: backup for backup in backups}
        self.closure: dict[int, frozenset[int]] = {}
        self.missing: dict[int, frozenset[int]] = {}
        for backup in backups:
            self._follow(backup.id)
        # The successful sound points whose every needed backup is still stored and sound.
        self.whole = {
            backup.id
            for backup in backups
            if backup.successful and not backup.damaged and not self.missing[backup.id]
        }

    def _follow(self, start: int) -> None:
        """Fill closure and missing for `start` (walking its needs, never twice)."""
        if start in self.closure:
            return
        needed: set[int] = set()
        missing: set[int] = set()
        pending = list(self.stored[start].needs)
        while pending:
            backup_id = pending.pop()
            if backup_id in needed or backup_id == start:
                continue
            backup = self.stored.get(backup_id)
            if backup is None:
                missing.add(backup_id)
                continue
            needed.add(backup_id)
            if backup.damaged:
                missing.add(backup_id)
            pending.extend(backup.needs)
        self.closure[start] = frozenset(needed)
        self.missing[start] = frozenset(missing)

    def keep_needed(self, decisions: list[Decision]) -> list[Decision]:
        """The decisions with every backup a kept point needs kept, and chains named."""
        kept = {decision.backup.id for decision in decisions if decision.keep}
        kept |= {backup_id for point in kept for backup_id in self.closure[point]}
        needed_by: dict[int, list[int]] = {}
        for decision in decisions:  # newest first, so needed_by lists newest first
            if decision.backup.id in kept:
                for backup_id in self.closure[decision.backup.id]:
                    needed_by.setdefault(backup_id, []).append(decision.backup.id)
        chained = []
        for decision in decisions:
            backup_id = decision.backup.id
            users = tuple(needed_by.get(backup_id, ()))
            reasons = decision.reasons
            if users:
                reasons = (*reasons, f"{CHAIN_RULE} {_runs(users)}")
            missing = tuple(sorted(self.missing[backup_id]))
            chained.append(
                Decision(decision.backup, decision.keep or bool(users), reasons, users, missing)
            )
        return chained


def _runs(run_ids: Sequence[int], shown: int = 5) -> str:
    """The run ids in words: run 7; runs 9, 8 and 7; runs 12, 11, 10, 9, 8 and 3 more."""
    if len(run_ids) == 1:
        return f"run {run_ids[0]}"
    head = ", ".join(str(run_id) for run_id in run_ids[:shown])
    if len(run_ids) > shown:
        return f"runs {head} and {len(run_ids) - shown} more"
    *first, last = [str(run_id) for run_id in run_ids]
    return f"runs {', '.join(first)} and {last}"


def _plan(
    backups: Sequence[Backup], policy: Policy, now: datetime, zone: tzinfo, whole: set[int]
) -> list[Decision]:
    ordered = sorted(backups, key=lambda backup: (backup.finished_at, backup.id), reverse=True)
    reasons: dict[int, list[str]] = {backup.id: [] for backup in ordered}
    if policy.is_empty:
        for backup in ordered:
            reasons[backup.id].append("no retention policy")
    newest_success = next((backup for backup in ordered if backup.id in whole), None)
    if newest_success is not None:
        reasons[newest_success.id].append("newest successful backup")
    for backup in ordered:
        if backup.in_use:
            reasons[backup.id].append("in use by a running task")
    if policy.keep_days is not None:
        cutoff = now - timedelta(days=policy.keep_days)
        for backup in ordered:
            if backup.finished_at > cutoff:
                reasons[backup.id].append(f"younger than {policy.keep_days} days")
    if policy.keep_last is not None:
        for backup in ordered[: policy.keep_last]:
            reasons[backup.id].append(f"one of the last {policy.keep_last}")
    for name, period_of in PERIODS.items():
        count = getattr(policy, f"keep_{name}")
        if count is None:
            continue
        seen: set[Hashable] = set()
        for backup in ordered:
            period = period_of(backup.finished_at.astimezone(zone))
            if period in seen:
                continue
            seen.add(period)
            if len(seen) > count:
                break
            reasons[backup.id].append(f"{name} ({len(seen)} of {count})")
    return [
        Decision(backup=backup, keep=bool(reasons[backup.id]), reasons=tuple(reasons[backup.id]))
        for backup in ordered
    ]


def to_delete(decisions: Sequence[Decision]) -> list[Backup]:
    return [decision.backup for decision in decisions if not decision.keep]


def _period_start(name: str, moment: datetime) -> datetime:
    """Local midnight starting the `name` period that `moment` (local) falls in."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if name == "weekly":
        return day - timedelta(days=day.weekday())
    if name == "monthly":
        return day.replace(day=1)
    if name == "yearly":
        return day.replace(month=1, day=1)
    return day


def _periods_later(name: str, start: datetime, count: int) -> datetime:
    """The start of the `name` period `count` periods after the one starting at `start`."""
    if name == "daily":
        return start + timedelta(days=count)
    if name == "weekly":
        return start + timedelta(weeks=count)
    if name == "monthly":
        months = start.month - 1 + count
        return start.replace(year=start.year + months // 12, month=months % 12 + 1)
    return start.replace(year=start.year + count)


def guaranteed_until(
    backups: Sequence[Backup],
    policy: Policy,
    now: datetime,
    zone: tzinfo = UTC,
    minimum_days: int = 0,
) -> dict[int, datetime]:
    """Backup id -> the time before which the policy is sure to keep it, known at `now`.

    This is the date an immutable copy may be locked until: retention would not delete
    the backup earlier whatever backups come later. `minimum_days` (the period the user
    sets for an Object Lock destination, which stands in for keep-last: a count promises
    no time) holds for every backup. Younger than N days promises N days from the
    backup's end. A GFS slot promises nothing while its period runs (a later backup in
    the same day, week, month or year takes the slot), but once the period is over its
    newest backup holds the slot until `count` periods have begun since: each later
    period adds at most one slot ahead of it. So a lock set at upload covers the minimum
    and the days, and later sweeps extend it as periods close. A backup that later
    points need (the full and incrementals of their chain) is promised as long as the
    longest promise among them: later sweeps extend its lock as incrementals arrive.
    """
    newest_in: dict[tuple[str, Hashable], Backup] = {}
    for backup in backups:
        for name, period_of in PERIODS.items():
            slot = (name, period_of(backup.finished_at.astimezone(zone)))
            held = newest_in.get(slot)
            if held is None or (backup.finished_at, backup.id) > (held.finished_at, held.id):
                newest_in[slot] = backup
    promised: dict[int, datetime] = {}
    for backup in backups:
        dates = [backup.finished_at + timedelta(days=minimum_days)]
        if policy.keep_days is not None:
            dates.append(backup.finished_at + timedelta(days=policy.keep_days))
        local = backup.finished_at.astimezone(zone)
        for name, period_of in PERIODS.items():
            count = getattr(policy, f"keep_{name}")
            if count is None or newest_in[(name, period_of(local))] is not backup:
                continue
            start = _period_start(name, local.replace(tzinfo=None))
            if _periods_later(name, start, 1).replace(tzinfo=zone) > now:
                continue  # the period still runs: a later backup may take its slot
            dates.append(_periods_later(name, start, count).replace(tzinfo=zone))
        promised[backup.id] = max(dates).astimezone(UTC)
    # A backup that a point needs stays while that point stays (plan_retention keeps it).
    chains = _Chains(backups)
    own = dict(promised)
    for backup in backups:
        for needed in chains.closure[backup.id]:
            promised[needed] = max(promised[needed], own[backup.id])
    return promised
