"""Login rate limits, counted in the database so every web process and machine shares them.

Two keys count each attempt, in a window that starts with the key's first attempt:

- the client address: at most `per_address` attempts (30 in 15 minutes), whatever the
  user names; an IPv6 address counts by its /64, which one client usually holds whole;
- the client address and the user name: at most `per_user` attempts (5 in 15 minutes).

An attempt is counted *before* its password is checked, by one atomic upsert per key
(`INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count`): concurrent
attempts get the numbers 1, 2, 3 ... whichever process serves them, so exactly the
limit is checked and the rest are refused without running argon2. A success deletes
its address-and-name row and gives its attempt back to the address, so the address
key counts failures.

The second step of a two-factor login (web.auth) is counted the same way, on the same
keys: a right password does not forgive the name's failures when a second step
follows, so the five attempts a window allows are shared by wrong passwords and wrong
codes, and typing the password again does not buy more guesses at the code.

Failures from one address never block another address: anyone may lock out only
their own address. The table stays small: rows whose window has passed are deleted
on every attempt, and an address over its limit adds no rows for new user names.
Keys are HMACs (with SECRET_KEY) of the address and name, so a password typed into
the name field is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mackuper.models import LoginAttempt, utcnow


@dataclass(frozen=True)
class LoginLimits:
    per_user: int = 5
    """Attempts per client address and user name in a window."""
    per_address: int = 30
    """Attempts per client address, for any user names, in a window."""
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Admission:
    """Whether a login attempt may check its password, and the keys it was counted on."""

    address_key: str
    user_key: str
    retry_after: int = 0
    """Seconds until the limit that refused it resets; 0 when it is allowed."""

    @property
    def allowed(self) -> bool:
        return self.retry_after == 0


def client_network(address: str | None) -> str:
    """The address a client is limited by: an IPv4 address, or an IPv6 address's /64."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class LoginLimiter:
    """Counts login attempts in the `login_attempts` table (see the module docstring)."""

    def __init__(
        self,
        secret: str,
        limits: LoginLimits | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.secret = secret.encode()
        self.limits = limits or LoginLimits()
        self.clock = clock

    def _key(self, kind: str, *parts: str) -> str:
        message = "\0".join((kind, *parts)).encode()
        return f"{kind}:{hmac.new(self.secret, message, hashlib.sha256).hexdigest()}"

    def admit(self, session: Session, address: str | None, username: str) -> Admission:
        """Count one attempt from `address` for `username` and commit; the answer says
        whether its password may be checked."""
        now = self.clock()
        network = client_network(address)
        address_key = self._key("address", network)
        user_key = self._key("user", network, username.casefold())
        retry_after = self._count(session, address_key, self.limits.per_address, now)
        if not retry_after:
            # Only now, so an address over its limit adds no rows for new names.
            retry_after = self._count(session, user_key, self.limits.per_user, now)
        session.commit()
        self._forget_expired(session, now)
        return Admission(address_key, user_key, retry_after)

    def succeeded(self, session: Session, admission: Admission, attempts: int = 1) -> None:
        """A correct password (or second step): forget the name's attempts, give the
        address its `attempts` back (2 after a second step: the password's and its own)."""
        # The address row first, as in admit(): two orders of locking could deadlock.
        session.execute(
            update(LoginAttempt)
            .where(LoginAttempt.key == admission.address_key, LoginAttempt.count > 0)
            .values(
                count=case((LoginAttempt.count > attempts, LoginAttempt.count - attempts), else_=0)
            )
        )
        session.execute(delete(LoginAttempt).where(LoginAttempt.key == admission.user_key))
        session.commit()

    def _count(self, session: Session, key: str, limit: int, now: datetime) -> int:
        """Add one attempt to `key`; seconds to wait when that is over `limit`, else 0."""
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(LoginAttempt).values(key=key, count=1, started_at=now)
        # A window that has passed starts again at this attempt.
        stale = LoginAttempt.started_at <= now - self.limits.window
        statement = statement.on_conflict_do_update(
            index_elements=[LoginAttempt.key],
            set_={
                "count": case((stale, 1), else_=LoginAttempt.count + 1),
                "started_at": case(
                    (stale, statement.excluded.started_at), else_=LoginAttempt.started_at
                ),
            },
        )
        count, started_at = session.execute(
            statement.returning(LoginAttempt.count, LoginAttempt.started_at)
        ).one()
        if count <= limit:
            return 0
        remaining = (started_at + self.limits.window - now).total_seconds()
        return max(1, math.ceil(remaining))

    def _forget_expired(self, session: Session, now: datetime) -> None:
        """Delete the rows whose window has passed.

        Rows another transaction holds are skipped (PostgreSQL), not waited for: this
        runs beside attempts that lock their two rows, and waiting could deadlock.
        """
        expired = (
            select(LoginAttempt.key)
            .where(LoginAttempt.started_at <= now - self.limits.window)
            .with_for_update(skip_locked=True)
        )
        session.execute(delete(LoginAttempt).where(LoginAttempt.key.in_(expired)))
        session.commit()
