"""MariaDB and Redis for tests: throwaway servers in temporary directories on free ports.

MariaDB: ``mariadb-install-db`` makes a data directory, ``mariadbd`` serves it on
127.0.0.1 only, and a ``mkp`` user with a password is made for the tests (root logs
in over the server's own socket). Redis: ``redis-server`` with no persistence of its
own, on 127.0.0.1, with a password. Both are stopped and removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers.ports import LOOPBACK, free_port
from tests.servers.process import ManagedProcess

START_TIMEOUT = 60.0


@dataclass(frozen=True)
class MariaDBServer:
    host: str
    port: int
    socket: Path
    user: str
    password: str

    def sql(self, statement: str, database: str = "") -> str:
        """Run SQL as root over the socket; the output (tab separated, no headers)."""
        argv = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B"]
        argv.append("--default-character-set=utf8mb4")
        if database:
            argv.append(f"--database={database}")
        result = subprocess.run(  # noqa: S603 - the tests' own statements
            argv, input=statement, capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"mariadb failed: {result.stderr}")
        return result.stdout


def _owned_by(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@contextlib.contextmanager
def running_mariadb() -> Iterator[MariaDBServer]:
    base = Path(tempfile.mkdtemp(prefix="mkp-mariadb-"))
    try:
        data = base / "data"
        data.mkdir()
        _owned_by(base, "mysql")  # its socket, pid file and log go there too
        _owned_by(data, "mysql")
        user = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        subprocess.run(  # noqa: S603
            ["mariadb-install-db", "--no-defaults", f"--datadir={data}", f"--user={user}"]
            + ["--auth-root-authentication-method=socket", "--skip-test-db"],
            capture_output=True,
            check=True,
            timeout=120,
        )
        port = free_port()
        socket = base / "mariadb.sock"
        process = ManagedProcess(
            "mariadbd",
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={data}",
                f"--user={user}",
                f"--port={port}",
                f"--bind-address={LOOPBACK}",
                f"--socket={socket}",
                f"--pid-file={base / 'mariadb.pid'}",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--log-bin=OFF",
            ],
            base / "mariadb.log",
            cwd=base,
        )
        process.start()
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not socket.exists():
                if not process.is_running() or time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not start:\n{process.log_text()}")
                time.sleep(0.2)
            password = secrets.token_hex(12)
            server = MariaDBServer(LOOPBACK, port, socket, "mkp", password)
            for _ in range(100):
                try:
                    server.sql(
                        f"CREATE USER 'mkp'@'%' IDENTIFIED BY '{password}';"
                        " GRANT ALL ON *.* TO 'mkp'@'%' WITH GRANT OPTION;"
                    )
                    break
                except RuntimeError:
                    time.sleep(0.2)
            yield server
        finally:
            process.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    password: str

    def cli(self, *arguments: str) -> str:
        result = subprocess.run(  # noqa: S603
            ["redis-cli", "-h", self.host, "-p", str(self.port), "--no-auth-warning", *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            env={**os.environ, "REDISCLI_AUTH": self.password},
        )
        return result.stdout


@contextlib.contextmanager
def running_redis(rdb: Path | None = None) -> Iterator[RedisServer]:
    """A Redis server; with `rdb`, one that starts from that snapshot file."""
    base = Path(tempfile.mkdtemp(prefix="mkp-redis-"))
    try:
        if rdb is not None:
            shutil.copyfile(rdb, base / "dump.rdb")
        port = free_port()
        password = secrets.token_hex(12)
        config = base / "redis.conf"
        config.write_text(
            f"bind {LOOPBACK}\nport {port}\ndir {base}\nsave ''\nappendonly no\n"
            f"requirepass {password}\nprotected-mode yes\ndbfilename dump.rdb\n"
            "enable-debug-command local\n"
        )
        config.chmod(0o600)
        process = ManagedProcess("redis-server", ["redis-server", str(config)], base / "log")
        process.start()
        server = RedisServer(LOOPBACK, port, password)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    if server.cli("PING").strip() == "PONG":
                        break
                except subprocess.CalledProcessError:
                    pass
                if not process.is_running() or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{process.log_text()}")
                time.sleep(0.1)
            yield server
        finally:
            process.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
