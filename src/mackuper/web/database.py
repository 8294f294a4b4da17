"""A database session per request, and the runtime behind the app."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from mackuper.runtime import Runtime


def runtime() -> Runtime:
    value: Runtime = current_app.extensions["mackuper"]
    return value


def get_db() -> Session:
    if "db" not in g:
        g.db = runtime().sessions()
    session: Session = g.db
    return session


def close_db(_error: BaseException | None = None) -> None:
    session: Session | None = g.pop("db", None)
    if session is not None:
        session.close()
