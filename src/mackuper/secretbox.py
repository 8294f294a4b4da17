"""Secrets at rest, encrypted with a master key that is not in the database.

The key comes from MACKUPER_MASTER_KEY or from a 0600 key file created in the data
directory on first start. The database keeps only a check token, so a wrong key
is noticed at start-up, before anything is read or written with it.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mackuper.config import ConfigError, Settings, write_private_file
from mackuper.models import Setting

_CHECK_KEY = "master_key_check"
_CHECK_PLAINTEXT = b"mackuper master key check v1"


class SecretBox:
    """Encrypts and decrypts small JSON documents with the master key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, values: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(values).encode()).decode()

    def decrypt(self, token: str | None) -> dict[str, Any]:
        """The secrets in `token` ({} for None); InvalidToken when the key is wrong."""
        if not token:
            return {}
        loaded = json.loads(self._fernet.decrypt(token.encode()))
        if not isinstance(loaded, dict):
            raise InvalidToken
        return loaded

    def matches(self, check_token: str) -> bool:
        try:
            return self._fernet.decrypt(check_token.encode()) == _CHECK_PLAINTEXT
        except InvalidToken:
            return False

    def check_token(self) -> str:
        return self._fernet.encrypt(_CHECK_PLAINTEXT).decode()


def _parse_key(raw: str, origin: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw.encode())
    except (ValueError, TypeError):
        raise ConfigError(f"{origin} is not valid base64") from None
    if len(key) != 32:
        raise ConfigError(
            f"{origin} must be 32 bytes in url-safe base64"
            " (make one with: python -c 'import secrets,base64;"
            "print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())')"
        )
    return raw.encode()


def load_master_key(settings: Settings, create: bool) -> bytes:
    """The master key from the environment, or the key file (created if allowed)."""
    if settings.master_key is not None:
        return _parse_key(settings.master_key, "MACKUPER_MASTER_KEY")
    path = settings.master_key_file
    if not path.exists():
        if not create:
            raise ConfigError(
                f"the master key file {path} is missing but the database holds secrets"
                " encrypted with it; restore the file or set MACKUPER_MASTER_KEY"
                " (nothing was changed)"
            )
        # Another process starting at the same moment may create it first.
        with contextlib.suppress(FileExistsError):
            write_private_file(path, Fernet.generate_key().decode())
    return _parse_key(path.read_text().strip(), f"the master key file {path}")


def _stored_check(engine: Engine) -> str | None:
    if not inspect(engine).has_table(Setting.__tablename__):
        return None
    with engine.connect() as connection:
        value: str | None = connection.execute(
            select(Setting.value).where(Setting.key == _CHECK_KEY)
        ).scalar_one_or_none()
    return value


def check_master_key(settings: Settings, engine: Engine) -> SecretBox:
    """Load the master key and prove it is the one this database was made with.

    Runs before migrations and writes nothing to the database; raises ConfigError
    when the key is missing or wrong.
    """
    stored = _stored_check(engine)
    box = SecretBox(load_master_key(settings, create=stored is None))
    if stored is not None and not box.matches(stored):
        origin = (
            "MACKUPER_MASTER_KEY"
            if settings.master_key
            else f"the key in {settings.master_key_file}"
        )
        raise ConfigError(
            f"{origin} is not the master key this database was created with;"
            " start with the original key (nothing was changed)"
        )
    return box


def record_master_key(box: SecretBox, session: Session) -> None:
    """Store the key check on first start (after migrations created the table).

    Several processes may start on a new database at once: the one whose insert
    loses only checks that the winner recorded the same key.
    """
    if session.get(Setting, _CHECK_KEY) is None:
        session.add(Setting(key=_CHECK_KEY, value=box.check_token()))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            stored = session.get(Setting, _CHECK_KEY)
            if stored is None or not box.matches(stored.value):
                raise ConfigError(
                    "another process started this database with a different master key;"
                    " give every process the same MACKUPER_MASTER_KEY (nothing was changed)"
                ) from None
