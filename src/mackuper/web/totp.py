"""Authenticator-app codes (TOTP, RFC 6238) and recovery codes, the second step's checks.

The secret is made by pyotp and stored encrypted with the master key (the secret box,
like every stored credential); it counts only once the user typed a code from it, so
a secret scanned wrongly never locks anyone out. A code is accepted for its 30-second
step and the steps either side (clocks drift), and only for a step after the last one
accepted: the conditional UPDATE on `last_counter` lets exactly one of two requests
carrying the same code through, so a code read over a shoulder or off the wire is
refused once it has been used.

Recovery codes are ten random codes of 10 characters (50 bits each) from an alphabet
without look-alikes, shown once; only their SHA-256 is stored (random codes of that
length need no slow hash: nobody can try 2^50 codes against the login limits, and a
stolen table does not reveal them), each marked used by one conditional UPDATE.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mackuper.models import RecoveryCode, TotpSecret, User, utcnow
from mackuper.secretbox import SecretBox

ISSUER = "Mackuper"
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
DRIFT_STEPS = 1
"""Codes of this many 30-second steps before and after now are accepted too."""


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app reads (as a QR code or pasted)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def confirmed(session: Session, user_id: int) -> TotpSecret | None:
    row = session.get(TotpSecret, user_id)
    return row if row is not None and row.confirmed_at is not None else None


def start_enrolment(session: Session, box: SecretBox, user: User) -> str:
    """A new unconfirmed secret for `user` (replacing an unconfirmed one); committed.

    Raises ValueError when the user has a confirmed one already."""
    row = session.get(TotpSecret, user.id)
    if row is not None and row.confirmed_at is not None:
        raise ValueError("An authenticator app is set up already; remove it first.")
    secret = new_secret()
    if row is None:
        row = TotpSecret(user_id=user.id, secret="")
        session.add(row)
    row.secret = box.encrypt({"totp": secret})
    row.created_at = utcnow()
    row.last_counter = None
    session.commit()
    return secret


def _matching_counter(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code is `code` (now's first, then the drift), or None."""
    digits = "".join(code.split())
    if len(digits) != 6 or not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for offset in (0, *range(-DRIFT_STEPS, 0), *range(1, DRIFT_STEPS + 1)):
        counter = current + offset
        if hmac.compare_digest(totp.generate_otp(counter), digits):
            return int(counter)
    return None


def check_code(
    session: Session, box: SecretBox, user_id: int, code: str, pending: bool = False
) -> bool:
    """Whether `code` is a fresh code of the user's secret (the confirmed one, or with
    `pending` the one being set up); accepting it uses it up (committed)."""
    row = session.get(TotpSecret, user_id)
    if row is None or (row.confirmed_at is None) != pending:
        return False
    secret = str(box.decrypt(row.secret).get("totp", ""))
    counter = _matching_counter(secret, code, utcnow())
    if counter is None:
        return False
    used = session.execute(
        update(TotpSecret)
        .where(
            TotpSecret.user_id == user_id,
            (TotpSecret.last_counter.is_(None)) | (TotpSecret.last_counter < counter),
        )
        .values(last_counter=counter)
    )
    session.commit()
    return bool(used.rowcount)  # type: ignore[attr-defined]


def confirm(session: Session, box: SecretBox, user_id: int, code: str) -> list[str] | None:
    """Activate the pending secret when `code` is from it: the new recovery codes, else None."""
    if not check_code(session, box, user_id, code, pending=True):
        return None
    session.execute(
        update(TotpSecret).where(TotpSecret.user_id == user_id).values(confirmed_at=utcnow())
    )
    return new_recovery_codes(session, user_id)


def remove(session: Session, user_id: int) -> None:
    """Delete the user's secret and recovery codes (committed)."""
    session.execute(delete(TotpSecret).where(TotpSecret.user_id == user_id))
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.commit()


def _normalise(code: str) -> str:
    return "".join(character for character in code.lower() if character.isalnum())


def _hash(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def new_recovery_codes(session: Session, user_id: int) -> list[str]:
    """Ten new codes, shown to the user once; the old ones stop working (committed)."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all(RecoveryCode(user_id=user_id, code_hash=_hash(code)) for code in codes)
    session.commit()
    return codes


def recovery_codes_left(session: Session, user_id: int) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return int(count or 0)


def use_recovery_code(session: Session, user_id: int, code: str) -> bool:
    """Whether `code` is one of the user's unused recovery codes; it is used up (committed)."""
    if len(_normalise(code)) != 10:
        return False
    used = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == _hash(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    session.commit()
    return bool(used.rowcount)  # type: ignore[attr-defined]
