"""PostgreSQL for tests: a throwaway database on a reachable server.

In order of preference:

1. a server already answering on 127.0.0.1:5432 (``pg_isready``);
2. the machine's Debian cluster ``<version> main``, started with
   ``pg_ctlcluster`` (and stopped again afterwards);
3. a throwaway cluster made with ``initdb`` in a temporary directory and
   run on a free port.

Whichever is used, each session gets a fresh database with a random name,
dropped at the end. Connections use the ``postgres`` role over TCP, so the
server must trust it on 127.0.0.1 (the throwaway cluster does); when it does
not, the next option is tried.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tests.servers.ports import LOOPBACK, free_port
from tests.servers.process import ManagedProcess

DEFAULT_PORT = 5432
SUPERUSER = "postgres"
OS_USER = "postgres"
START_TIMEOUT = 60.0
PG_LIB = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class PostgresServer:
    """A reachable PostgreSQL server and the role the tests use."""

    host: str
    port: int
    user: str = SUPERUSER
    origin: str = "existing"
    """How it was found: ``existing``, ``pg_ctlcluster`` or ``initdb``."""

    def url(self, dbname: str) -> str:
        """Return a SQLAlchemy URL (psycopg 3 driver) for ``dbname``."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """Open an autocommit connection to ``dbname``."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def accepts_login(self) -> bool:
        """Return True when the test role can log in (e.g. trust auth)."""
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True


def run(argv: list[str], timeout: float = 120.0) -> str:
    """Run a command; raise with its output if it fails; return stdout."""
    result = subprocess.run(  # noqa: S603 - fixed commands built here
        argv, capture_output=True, text=True, check=False, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def _major_version(path: Path) -> int:
    """``/usr/lib/postgresql/15`` -> 15 (0 for anything else)."""
    return int(path.name) if path.name.isdigit() else 0


def pg_bin(name: str) -> Path:
    """Return a PostgreSQL server binary from the newest version installed."""
    for version_dir in sorted(PG_LIB.glob("*"), key=_major_version, reverse=True):
        candidate = version_dir / "bin" / name
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"PostgreSQL binary {name!r} not found under {PG_LIB}")
    return Path(found)


def is_ready(port: int, host: str = LOOPBACK) -> bool:
    """Return True when ``pg_isready`` says the server accepts connections."""
    try:
        argv = [str(pg_bin("pg_isready")), "-q", "-h", host, "-p", str(port), "-t", "2"]
    except FileNotFoundError:
        return False
    return subprocess.run(argv, check=False, timeout=10).returncode == 0  # noqa: S603


def wait_ready(port: int, timeout: float = START_TIMEOUT) -> None:
    """Wait until a server answers on ``port``; raise TimeoutError if it never does."""
    deadline = time.monotonic() + timeout
    while not is_ready(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL on port {port} not ready after {timeout:.0f}s")
        time.sleep(0.2)


def as_postgres_user(argv: list[str]) -> list[str]:
    """Prefix ``argv`` so it runs as the ``postgres`` OS user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", OS_USER, "--", *argv]
    return argv


@dataclass(frozen=True)
class Cluster:
    """One line of ``pg_lsclusters``."""

    version: str
    name: str
    port: int
    online: bool


def debian_clusters() -> list[Cluster]:
    """Return the machine's Debian clusters (empty without postgresql-common)."""
    if shutil.which("pg_lsclusters") is None:
        return []
    clusters = []
    for line in run(["pg_lsclusters", "--no-header"]).splitlines():
        fields = line.split()
        if len(fields) >= 4 and re.fullmatch(r"\d+", fields[2]):
            clusters.append(Cluster(fields[0], fields[1], int(fields[2]), fields[3] == "online"))
    return clusters


@contextlib.contextmanager
def existing_server() -> Iterator[PostgresServer | None]:
    """Yield the server on 127.0.0.1:5432 if it answers and trusts us, else None."""
    server = PostgresServer(LOOPBACK, DEFAULT_PORT, origin="existing")
    yield server if is_ready(DEFAULT_PORT) and server.accepts_login() else None


@contextlib.contextmanager
def debian_cluster(name: str = "main") -> Iterator[PostgresServer | None]:
    """Start Debian cluster ``name`` (newest version) unless it runs; stop it afterwards.

    Yields None when there is no such cluster, it fails to start, or it does
    not trust the ``postgres`` role over TCP.
    """
    clusters = [c for c in debian_clusters() if c.name == name]
    cluster = max(clusters, key=lambda c: int(c.version), default=None)
    if cluster is None:
        yield None
        return
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", cluster.version, cluster.name]
    started = False
    if not is_ready(cluster.port):
        try:
            run([*ctl, "start"])
            wait_ready(cluster.port)
        except (RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            yield None
            return
        started = True
    try:
        server = PostgresServer(LOOPBACK, cluster.port, origin="pg_ctlcluster")
        yield server if server.accepts_login() else None
    finally:
        if started:
            run([*ctl, "stop"])  # pg_ctlcluster stops in "fast" mode


@dataclass(frozen=True)
class OwnCluster:
    """A throwaway cluster of this test's own, which it may stop and start at will
    (the shared server of a session must not be restarted under other tests)."""

    server: PostgresServer
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(lambda: is_ready(self.server.port), timeout=START_TIMEOUT)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[PostgresServer]:
    """``initdb`` a cluster in a temp dir, run it on a free port, remove it after."""
    with own_cluster() as cluster:
        yield cluster.server


@contextlib.contextmanager
def own_cluster() -> Iterator[OwnCluster]:
    """``initdb`` a cluster in a temp dir, run it on a free port, remove it after."""
    base = Path(tempfile.mkdtemp(prefix="mkp-pg-"))
    try:
        data, sockets = base / "data", base / "sockets"
        sockets.mkdir()
        if os.geteuid() == 0:
            entry = pwd.getpwnam(OS_USER)
            for path in (base, sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        run(
            as_postgres_user(
                [str(pg_bin("initdb")), "-D", str(data), "-U", SUPERUSER, "-A", "trust"]
                + ["-E", "UTF8", "--no-sync", "--no-instructions"]
            )
        )
        port = free_port()
        process = ManagedProcess(
            "postgres",
            as_postgres_user(postgres_command(data, sockets, port)),
            base / "postgres.log",
            cwd=base,
            stop_signal=signal.SIGINT,  # "fast" shutdown
        )
        try:
            process.start()
            process.wait_ready(lambda: is_ready(port), timeout=START_TIMEOUT)
            yield OwnCluster(PostgresServer(LOOPBACK, port, origin="initdb"), process)
        finally:
            process.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def postgres_command(data: Path, sockets: Path, port: int) -> list[str]:
    """The command that runs a throwaway cluster: loopback only, no fsync."""
    settings = {
        "listen_addresses": LOOPBACK,
        "unix_socket_directories": str(sockets),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
    }
    argv = [str(pg_bin("postgres")), "-D", str(data), "-p", str(port)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    return argv


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Yield a usable server, trying the existing one, Debian's, then initdb."""
    with existing_server() as server:
        if server is not None:
            yield server
            return
    with debian_cluster() as server:
        if server is not None:
            yield server
            return
    with throwaway_cluster() as server:
        yield server


@contextlib.contextmanager
def temporary_database(server: PostgresServer) -> Iterator[str]:
    """Create a database with a random name; drop it (forcefully) afterwards."""
    name = f"mkp_test_{uuid.uuid4().hex[:16]}"
    with server.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with server.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
