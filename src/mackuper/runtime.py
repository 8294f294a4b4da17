"""What every process needs: settings, database, secret box. Built once at start."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mackuper import db
from mackuper.config import Settings, load_settings
from mackuper.secretbox import SecretBox, check_master_key, record_master_key


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    secrets: SecretBox


def open_runtime(settings: Settings | None = None, migrate: bool = True) -> Runtime:
    """Load settings, apply migrations and check the master key.

    Raises ConfigError with a one-line message when anything is unusable; a wrong
    master key is detected before anything is written.
    """
    settings = settings or load_settings()
    engine = db.make_engine(settings.database_url)
    try:
        box = check_master_key(settings, engine)
        if migrate:
            db.upgrade(settings, engine)
        sessions = db.make_session_factory(engine)
        with sessions() as session:
            record_master_key(box, session)
    except BaseException:
        engine.dispose()
        raise
    return Runtime(settings=settings, engine=engine, sessions=sessions, secrets=box)
