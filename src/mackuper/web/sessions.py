"""Login sessions kept on the server, so logging out ends them.

The session cookie (and the remember cookie) carry a random session id as
Flask-Login's user id; the `login_sessions` row holds its SHA-256, the user and
when it ends. Logout deletes the row, so a cookie copied before logout is refused
after it; a password change deletes the user's other rows. A session ends after
SESSION_IDLE without a request, a remembered one REMEMBER_FOR after login (the
remember cookie's own lifetime). Ended rows are deleted at each login.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask_login import UserMixin
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from mackuper.models import LoginSession, Role, User, utcnow
from mackuper.web.database import get_db

SESSION_IDLE = timedelta(hours=12)
REMEMBER_FOR = timedelta(days=30)
SEEN_RESOLUTION = timedelta(minutes=1)
"""How often a session's last request is written down (not on every request)."""


class LoginUser(UserMixin):  # type: ignore[misc]
    """The Flask-Login view of a user: by a browser session, or by an API token
    (`session_id` None) whose `role` may be lower than the user's."""

    def __init__(self, user: User, session_id: str | None = None, role: Role | None = None) -> None:
        self.user = user
        self.session_id = session_id
        self.role: Role = user.role if role is None else role.capped(user.role)

    def get_id(self) -> str:
        if self.session_id is None:
            raise RuntimeError("a user authenticated by an API token has no session")
        return self.session_id


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(session: Session, user: User, remember: bool) -> LoginUser:
    """A new session row for `user` (committed), to pass to `login_user`."""
    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(delete(LoginSession).where(LoginSession.expires_at <= now))
    session.add(
        LoginSession(
            id_hash=_hash(session_id),
            user_id=user.id,
            remember=remember,
            created_at=now,
            seen_at=now,
            expires_at=now + (REMEMBER_FOR if remember else SESSION_IDLE),
        )
    )
    session.commit()
    return LoginUser(user, session_id)


def load_user(session_id: str) -> LoginUser | None:
    """Flask-Login's user loader: the user of a live session, else None."""
    session = get_db()
    row = session.get(LoginSession, _hash(session_id))
    now = utcnow()
    if row is None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    if now - row.seen_at > SEEN_RESOLUTION:
        values = (
            {"seen_at": now} if row.remember else {"seen_at": now, "expires_at": now + SESSION_IDLE}
        )
        session.execute(
            update(LoginSession).where(LoginSession.id_hash == row.id_hash).values(**values)
        )
        session.commit()
    return LoginUser(user, session_id)


def end_session(session: Session, session_id: str | None) -> None:
    """Delete the row of `session_id` (nothing when None): its cookies stop working."""
    if session_id is not None:
        session.execute(delete(LoginSession).where(LoginSession.id_hash == _hash(session_id)))
        session.commit()


def end_other_sessions(session: Session, user_id: int, keep: str | None) -> None:
    """Delete every session of `user_id` except `keep`'s."""
    statement = delete(LoginSession).where(LoginSession.user_id == user_id)
    if keep is not None:
        statement = statement.where(LoginSession.id_hash != _hash(keep))
    session.execute(statement)
    session.commit()
