"""Whether the setup wizard has run: an admin exists, the first destination is saved."""

from __future__ import annotations

from sqlalchemy import func, select

from mackuper.models import Setting, User
from mackuper.web.database import get_db

SETUP_COMPLETE = "setup_complete"


def admin_exists() -> bool:
    return bool(get_db().scalar(select(func.count()).select_from(User)))


def setup_complete() -> bool:
    return get_db().get(Setting, SETUP_COMPLETE) is not None


def mark_setup_complete() -> None:
    session = get_db()
    if session.get(Setting, SETUP_COMPLETE) is None:
        session.add(Setting(key=SETUP_COMPLETE, value="1"))
        session.commit()
