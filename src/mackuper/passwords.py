"""Password hashing (argon2id) and the password strength rule."""

from __future__ import annotations

import functools
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

PASSWORD_RULE = "at least 8 characters, with an upper-case letter, a lower-case letter and a digit"  # noqa: S105 - a message, not a password


def password_problem(password: str) -> str | None:
    """Why `password` is too weak, or None when it is acceptable."""
    if (
        len(password) < 8
        or not re.search(r"[A-Z]", password)
        or not re.search(r"[a-z]", password)
        or not re.search(r"[0-9]", password)
    ):
        return f"Password needs {PASSWORD_RULE}."
    if len(password) > 1024:
        return "Password is longer than 1024 characters."
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def dummy_hash() -> str:
    """The hash of a random password nobody knows, made once per process.

    A login for an unknown user name verifies against it, so it costs what a known
    name costs and its answer time does not tell whether the user exists.
    """
    return _hasher.hash(secrets.token_urlsafe(32))
