"""Installation-wide settings kept in the database (the `settings` table).

The web settings page writes them; the worker reads them each cycle, so a change
takes effect within about a second without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mackuper.core import schedule
from mackuper.models import Setting

TIMEZONE = "timezone"
GRACE_MINUTES = "missed_tick_grace_minutes"
MAX_CONCURRENT_RUNS = "max_concurrent_runs"
HISTORY_DAYS = "history_keep_days"
RETENTION_SWEPT = "retention_swept_on"
CONTAINER_ENGINE = "container_engine"
"""The Docker Engine API address (socket path or URL); unset: DOCKER_HOST or Docker's socket."""
CONTAINER_HELPER_IMAGE = "container_helper_image"
"""The image of the throwaway containers that read volumes; unset: one found locally."""
"""The UTC date of the last daily retention sweep (so one worker does it per day)."""

DEFAULT_GRACE_MINUTES = 30
GRACE_RANGE = (0, 7 * 24 * 60)
CONCURRENCY_RANGE = (1, 64)
MIN_HISTORY_DAYS = 30
MAX_HISTORY_DAYS = 36_500


def timezone_from_environment(env: Mapping[str, str] | None = None) -> str:
    """TZ when it names a known zone, else UTC."""
    env = os.environ if env is None else env
    name = env.get("TZ", "").strip().removeprefix(":")
    if not name:
        return "UTC"
    try:
        schedule.zone(name)
    except schedule.ScheduleError:
        return "UTC"
    return name


def read(session: Session, key: str) -> str | None:
    setting = session.get(Setting, key)
    return setting.value if setting else None


def write(session: Session, key: str, value: str | None) -> None:
    """Set (or with None, remove) one setting; the caller commits."""
    setting = session.get(Setting, key)
    if value is None:
        if setting is not None:
            session.delete(setting)
    elif setting is None:
        session.add(Setting(key=key, value=value))
    else:
        setting.value = value


def _int(session: Session, key: str, default: int | None, low: int, high: int) -> int | None:
    raw = read(session, key)
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return None if value is None else max(low, min(high, value))


def timezone(session: Session) -> str:
    """The installation's time zone (job schedules default to it)."""
    return read(session, TIMEZONE) or timezone_from_environment()


def remember_timezone(sessions: sessionmaker[Session]) -> None:
    """On first start, store the zone TZ names, so later changes of TZ move nothing."""
    with sessions() as session:
        if read(session, TIMEZONE) is not None:
            return
        session.add(Setting(key=TIMEZONE, value=timezone_from_environment()))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another process stored it first


def missed_tick_grace(session: Session) -> timedelta:
    minutes = _int(session, GRACE_MINUTES, DEFAULT_GRACE_MINUTES, *GRACE_RANGE)
    return timedelta(minutes=minutes or 0)


def max_concurrent_runs(session: Session, default: int) -> int:
    return _int(session, MAX_CONCURRENT_RUNS, default, *CONCURRENCY_RANGE) or default


def history_keep_days(session: Session) -> int | None:
    """Runs older than this many days are removed from history; None keeps all."""
    return _int(session, HISTORY_DAYS, None, MIN_HISTORY_DAYS, MAX_HISTORY_DAYS)


def container_engine(session: Session) -> str:
    """The container engine address as set in Settings ("" when unset)."""
    return read(session, CONTAINER_ENGINE) or ""


def container_helper_image(session: Session) -> str:
    return read(session, CONTAINER_HELPER_IMAGE) or ""
