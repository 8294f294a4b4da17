"""A database dump out of a stored archive, fed to the database's own restore tool.

The parts of one dump (`<path>.part000001`, ...; sources/dump.py) are read in archive
order and written, joined, to the standard input of the tool the README names for it:
`pg_restore` (custom format) or `psql` (plain SQL) for PostgreSQL, `mariadb` for
MariaDB, `sqlite3` for SQLite; nothing is written to disk on the way (an SQLite
restore builds its new file beside the target). A new database is made first and must
not exist; an existing one is replaced only when the person confirmed it by typing its
name (web/databases.py, cli/restore.py check both before a restore is queued, and
`prepare` again when it runs):

- PostgreSQL: `pg_restore --clean --if-exists` drops each object the dump holds before
  restoring it;
- MariaDB: the dump drops each table and view before making it (`mariadb-dump`'s
  default), and its routines, events and triggers come with their tables;
- SQLite: the dump is restored into a new file beside the target, which then replaces
  the target's content through SQLite's online backup (under SQLite's own locks, so a
  reader never sees half of it); the file is made afresh for a new database.

Redis is not restored into a running server: a snapshot is loaded by a server at its
start, so its restore is the download and the README's steps (stop, put the file in
place, start).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mackuper.restore.errors import RestoreError
from mackuper.restore.formats import Member, MemberKind, Opener
from mackuper.sources.base import SourceError
from mackuper.sources.dump import PART_SUFFIX, DumpProcess
from mackuper.sources.mariadb import MariaDBConnection, quote_name
from mackuper.sources.postgres import PostgresConnection

CHUNK = 1 << 20


def conninfo_database(name: str) -> str:
    """A libpq connection string naming only the database `name` (quoted, so any name
    is that name: a bare `-d` value with `=` in it would be read as settings)."""
    escaped = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{escaped}'"


@dataclass
class DatabaseRestore:
    """Where one dump goes and how; each kind says where, makes or checks the target,
    names the tool that reads the dump, and finishes."""

    database: str
    """The database to restore into (for SQLite, the database file's path)."""
    dump_path: str
    """The dump's member name without `.partNNNNNN` (the manifest's `path`)."""
    create: bool
    """Make the database first (it must not exist); else restore into the existing one."""

    def where(self) -> str:
        raise NotImplementedError

    def exists(self) -> bool:
        """Whether the target database exists now; SourceError when that cannot be seen."""
        raise NotImplementedError

    def check(self) -> None:
        """RestoreError when a new database exists, or an existing one does not."""
        try:
            exists = self.exists()
        except SourceError as error:
            raise RestoreError(str(error)) from error
        if self.create and exists:
            raise RestoreError(
                f"database {self.database!r} already exists on {self.where()}: choose a new"
                " name, or restore into it on purpose (typing its name again to confirm)"
            )
        if not self.create and not exists:
            raise RestoreError(f"database {self.database!r} does not exist on {self.where()}")

    def prepare(self) -> None:
        """Check the target and make it when new; RestoreError when it cannot."""
        self.check()

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The restore tool's argv and the environment it gets (its password)."""
        raise NotImplementedError

    def finish(self) -> None:
        """After the tool succeeded: put the result in place (SQLite)."""

    def cleanup(self) -> None:
        """Always, at the end: remove what the restore left on the way."""


@dataclass
class PostgresRestore(DatabaseRestore):
    connection: PostgresConnection = field(default_factory=lambda: PostgresConnection("", 0, ""))
    dump_format: str = "custom"
    clean: bool = False
    """Drop each object before it is restored (an existing database, confirmed)."""

    def where(self) -> str:
        return f"{self.connection.host}:{self.connection.port}"

    def exists(self) -> bool:
        return bool(
            self.connection.query(
                "SELECT 1 FROM pg_database WHERE datname = :'name'", {"name": self.database}
            )
        )

    def prepare(self) -> None:
        self.check()
        if self.create:
            try:
                self.connection.query('CREATE DATABASE :"name"', {"name": self.database})
            except SourceError as error:
                raise RestoreError(str(error)) from error

    def command(self) -> tuple[list[str], dict[str, str]]:
        target = conninfo_database(self.database)
        if self.dump_format == "plain":
            argv = ["psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-d", target]
        else:
            argv = ["pg_restore", "-w", "--no-owner", "--exit-on-error", "-d", target]
            if self.clean:
                argv += ["--clean", "--if-exists"]
        return argv, self.connection.environment()


@dataclass
class MariaDBRestore(DatabaseRestore):
    connection: MariaDBConnection = field(default_factory=lambda: MariaDBConnection("", 0, ""))

    def where(self) -> str:
        return f"{self.connection.host}:{self.connection.port}"

    def exists(self) -> bool:
        return self.connection.database_exists(self.database)

    def prepare(self) -> None:
        self.check()
        if self.create:
            try:
                self.connection.query(
                    f"CREATE DATABASE {quote_name(self.database)} CHARACTER SET utf8mb4"
                )
            except SourceError as error:
                raise RestoreError(str(error)) from error

    def command(self) -> tuple[list[str], dict[str, str]]:
        argv = ["mariadb", *self.connection.options(), "--binary-mode"]
        return [*argv, f"--database={self.database}"], self.connection.environment()


@dataclass
class SQLiteRestore(DatabaseRestore):
    building: str = ""
    """The new file the dump is restored into, beside the target."""

    def where(self) -> str:
        return "this worker"

    def exists(self) -> bool:
        return os.path.lexists(self.database)

    def check(self) -> None:
        if not os.path.isabs(self.database):
            raise RestoreError(f"{self.database} is not an absolute path")
        folder = os.path.dirname(self.database)
        if not os.path.isdir(folder):
            raise RestoreError(f"the folder {folder} does not exist on this worker")
        if self.exists() and not os.path.isfile(self.database):
            raise RestoreError(f"{self.database} is not a database file")
        super().check()

    def prepare(self) -> None:
        self.check()
        folder, name = os.path.split(self.database)
        try:
            handle, self.building = tempfile.mkstemp(
                prefix=f".{name}.", suffix=".mackuper-restore", dir=folder
            )
        except OSError as error:
            raise RestoreError(f"cannot write in {folder}: {error.strerror}") from error
        os.close(handle)

    def command(self) -> tuple[list[str], dict[str, str]]:
        return ["sqlite3", "-bail", "-batch", self.building], {}

    def finish(self) -> None:
        try:
            if self.create:
                # A link fails when the name was taken meanwhile: nothing is overwritten.
                os.link(self.building, self.database)
                return
            with (
                contextlib.closing(sqlite3.connect(self.building)) as restored,
                contextlib.closing(sqlite3.connect(self.database, timeout=60)) as target,
            ):
                restored.backup(target)
        except FileExistsError as error:
            raise RestoreError(f"{self.database} was made while the restore ran") from error
        except (OSError, sqlite3.Error) as error:
            raise RestoreError(f"cannot replace {self.database}: {error}") from error

    def cleanup(self) -> None:
        if self.building:
            for suffix in ("", "-journal", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.building + suffix)


def dump_members(
    members: Iterator[tuple[Member, Opener | None]], dump_path: str
) -> Iterator[tuple[Member, Opener]]:
    """The parts of `dump_path` in archive order; RestoreError when one is missing."""
    pattern = re.compile(re.escape(dump_path + PART_SUFFIX) + r"(\d{6})")
    expected = 1
    for member, opener in members:
        found = pattern.fullmatch(member.name)
        if found is None or member.kind is not MemberKind.FILE or opener is None:
            continue
        if int(found.group(1)) != expected:
            raise RestoreError(f"part {expected} of {dump_path} is missing from the archive")
        expected += 1
        yield member, opener
    if expected == 1:
        raise RestoreError(f"the archive holds no dump {dump_path}")


def restore_database(
    plan: DatabaseRestore,
    members: Iterator[tuple[Member, Opener | None]],
    log: Callable[[str, str], None],
    on_bytes: Callable[[int], None],
) -> int:
    """Feed the dump's parts to the restore tool; the bytes fed.

    Raises RestoreError with the tool's error line when it fails; whatever a server
    had restored by then stays (PostgreSQL and MariaDB restores are not one
    transaction); an SQLite target is left as it was.
    """
    try:
        plan.prepare()
        if plan.create:
            log("info", f"created database {plan.database!r}")
        argv, environment = plan.command()
        tool = DumpProcess(argv, environment, argv[0], stdin=True)
    except SourceError as error:
        plan.cleanup()
        raise RestoreError(str(error)) from error
    except BaseException:
        plan.cleanup()
        raise

    class _Log:
        def problem(self, message: str) -> None:
            log("warning", message)

        def note(self, message: str) -> None:
            log("info", message)

    reporter = _Log()
    fed = 0
    try:
        assert tool.stdin is not None  # noqa: S101 - asked for with stdin=True
        for _member, opener in dump_members(members, plan.dump_path):
            with opener() as part:
                while chunk := part.read(CHUNK):
                    try:
                        tool.stdin.write(chunk)
                    except BrokenPipeError:
                        tool.stdin = None
                        break
                    fed += len(chunk)
                    on_bytes(len(chunk))
            tool.log_errors(reporter)
            if tool.stdin is None:
                break
        if tool.stdin is not None:
            tool.stdin.close()
            tool.stdin = None
        tool.finish(reporter)
        plan.finish()
    except SourceError as error:
        raise RestoreError(str(error)) from error
    finally:
        tool.stop()
        plan.cleanup()
    return fed
