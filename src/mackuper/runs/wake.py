"""Waking workers the moment a run is queued, instead of at their next poll.

Whoever queues a run (the web, the CLI) commits with `commit_and_wake`, and so does
the end of a run's post-phase (lifecycle `_settled`), which frees its job and its
slot. Every worker keeps a `WakeListener` that sets its wake event.

- PostgreSQL: ``pg_notify`` inside the queuing transaction (delivered only if it
  commits); each worker LISTENs on its own connection, on any host.
- SQLite: every worker on the machine binds a UNIX datagram socket in a directory
  beside the database file; the queuing process sends one byte to each.

A wake-up is only a hint: a lost one costs latency, never a run, because the
worker still polls every ``MACKUPER_WORKER_POLL_SECONDS``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

CHANNEL = "mackuper_runs"
RECONNECT_SECONDS = 5.0
LISTEN_TIMEOUT = 1.0
"""How often a listener thread looks whether it should stop."""
MAX_SOCKET_PATH = 100
"""Linux refuses UNIX socket paths over 107 bytes; longer ones use `_fallback_directory`."""


def commit_and_wake(session: Session) -> None:
    """Commit the session's queued runs, then wake the workers that may take them."""
    bind = session.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        session.execute(select(func.pg_notify(CHANNEL, "")))
    session.commit()
    if not postgres:
        poke_sqlite_workers(bind.engine.url)


# --- SQLite: datagram sockets beside the database file ---------------------------


def _sqlite_file(url: URL) -> Path | None:
    name = url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name).resolve()


def _directories(database: Path) -> Iterator[Path]:
    """Where listeners of `database` bind: beside it, and the short fallback."""
    yield database.with_name(database.name + ".wake")
    yield _fallback_directory(database)


def _fallback_directory(database: Path) -> Path:
    digest = hashlib.sha256(str(database).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mackuper-wake-{os.getuid()}-{digest}"


def poke_sqlite_workers(url: URL) -> int:
    """Send one byte to every listener of the database at `url`; returns how many got it."""
    database = _sqlite_file(url)
    if database is None:
        return 0
    woken = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for directory in _directories(database):
            if not directory.is_dir():
                continue
            for path in directory.glob("*.sock"):
                try:
                    sender.sendto(b"!", str(path))
                    woken += 1
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(OSError):  # another process's, or gone
                        path.unlink(missing_ok=True)  # its worker died without cleaning up
                except BlockingIOError:
                    woken += 1  # its queue is full: it has been woken already
                except OSError as error:
                    logger.debug("could not wake the worker at %s: %s", path, error)
    return woken


# --- the worker's side -------------------------------------------------------------


class WakeListener:
    """Sets `event` whenever another process queues a run; `close` stops it."""

    def __init__(self, engine: Engine, event: threading.Event) -> None:
        self.engine = engine
        self.event = event
        self._closed = threading.Event()
        self._listening = threading.Event()
        """PostgreSQL: LISTENing on a live connection (so the database answers)."""
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._socket_path: Path | None = None

    def start(self) -> None:
        if self.engine.dialect.name == "postgresql":
            target = self._listen_postgres
        else:
            database = _sqlite_file(self.engine.url)
            if database is None or not self._bind(database):
                return
            target = self._listen_socket
        self._thread = threading.Thread(target=target, name="wake", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._socket_path is not None:
            # Wake our own thread out of `recv`, rather than wait for its timeout: a
            # worker starting afresh claims nothing until it has closed this.
            with (
                contextlib.suppress(OSError),
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender,
            ):
                sender.setblocking(False)  # a full queue: the thread has a wake-up already
                sender.sendto(b"!", str(self._socket_path))
        elif self._listening.is_set():
            self._notify_self()
        if self._thread is not None:
            self._thread.join(timeout=LISTEN_TIMEOUT * 3)
        if self._socket is not None:
            self._socket.close()
        if self._socket_path is not None:
            self._socket_path.unlink(missing_ok=True)

    def _notify_self(self) -> None:
        """Wake our own thread out of `notifies`, rather than wait for its timeout (a
        worker starting afresh claims nothing until it has closed this). Every other
        listener of the installation wakes too and looks once: a wake-up is a hint.
        Only while the thread listens on a live connection: with the database gone,
        connecting could take far longer than the timeout."""
        try:
            with self.engine.connect() as connection:
                connection.execute(select(func.pg_notify(CHANNEL, "")))
                connection.commit()
        except SQLAlchemyError as error:  # the database is gone: the timeout ends it
            logger.debug("could not wake the listener to close it: %s", error)

    def _bind(self, database: Path) -> bool:
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        for directory in _directories(database):
            path = directory / name
            if len(os.fsencode(path)) > MAX_SOCKET_PATH:
                continue
            try:
                directory.mkdir(mode=0o700, exist_ok=True)
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                listener.bind(str(path))
            except OSError as error:
                logger.info("no wake-up socket at %s (%s); polling only", path, error)
                continue
            listener.settimeout(LISTEN_TIMEOUT)
            self._socket, self._socket_path = listener, path
            return True
        return False

    def _listen_socket(self) -> None:
        listener = self._socket
        while listener is not None and not self._closed.is_set():
            try:
                listener.recv(64)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            self.event.set()

    def _listen_postgres(self) -> None:
        import psycopg  # noqa: PLC0415 (only PostgreSQL installations need it)

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        while not self._closed.is_set():
            try:
                with contextlib.closing(psycopg.connect(conninfo, autocommit=True)) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    self.event.set()  # (re)connected: look once, a wake-up may have been missed
                    while not self._closed.is_set():
                        for _ in connection.notifies(timeout=LISTEN_TIMEOUT, stop_after=1):
                            self.event.set()
            except psycopg.Error as error:
                self._listening.clear()
                logger.info("wake-up listener lost the database (%s); polling meanwhile", error)
                self._closed.wait(RECONNECT_SECONDS)
