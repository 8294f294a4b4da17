"""A database dump out of a stored archive, fed to the server's own restore tool.

The parts of one dump (`<path>.part000001`, ...; sources/dump.py) are read in archive
order and written, joined, to the standard input of `pg_restore` (custom format) or
`psql` (plain SQL): the same as the README's `tar -xO | pg_restore` command, and
nothing is written to disk. The target database is made first when asked to (it
must not exist then), or cleaned object by object (`pg_restore --clean`) when the
person confirmed that its objects are replaced.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mackuper.restore.errors import RestoreError
from mackuper.restore.formats import Member, MemberKind, Opener
from mackuper.sources.base import SourceError
from mackuper.sources.dump import PART_SUFFIX, DumpProcess
from mackuper.sources.postgres import PostgresConnection

CHUNK = 1 << 20


def conninfo_database(name: str) -> str:
    """A libpq connection string naming only the database `name` (quoted, so any name
    is that name: a bare `-d` value with `=` in it would be read as settings)."""
    escaped = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{escaped}'"


@dataclass
class DatabaseRestore:
    """Where one dump goes: the server, the database, and how."""

    connection: PostgresConnection
    database: str
    dump_path: str
    """The dump's member name without `.partNNNNNN` (the manifest's `path`)."""
    dump_format: str
    create: bool
    """Make the database first (it must not exist); else restore into the existing one."""
    clean: bool = False
    """Drop each object before it is restored (an existing database, confirmed)."""

    def command(self) -> list[str]:
        target = conninfo_database(self.database)
        if self.dump_format == "plain":
            return ["psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-d", target]
        argv = ["pg_restore", "-w", "--no-owner", "--exit-on-error", "-d", target]
        if self.clean:
            argv += ["--clean", "--if-exists"]
        return argv

    def create_database(self) -> None:
        """CREATE DATABASE; RestoreError when it exists or cannot be made."""
        variables = {"name": self.database}
        exists = self.connection.query(
            "SELECT 1 FROM pg_database WHERE datname = :'name'", variables
        )
        if exists:
            raise RestoreError(
                f"database {self.database!r} already exists on {self.connection.host}:"
                f"{self.connection.port}: choose a new name, or restore into it on purpose"
            )
        self.connection.query('CREATE DATABASE :"name"', variables)


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

    Raises RestoreError with the tool's error line when it fails; whatever it had
    restored by then stays (PostgreSQL restores are not one transaction).
    """
    try:
        if plan.create:
            plan.create_database()
            log("info", f"created database {plan.database!r}")
        argv = plan.command()
        tool = DumpProcess(argv, plan.connection.environment(), argv[0], stdin=True)
    except SourceError as error:
        raise RestoreError(str(error)) from error

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
    except SourceError as error:
        raise RestoreError(str(error)) from error
    finally:
        tool.stop()
    return fed
