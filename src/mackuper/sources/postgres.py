"""PostgreSQL databases, dumped by `pg_dump` (and `pg_dumpall --globals-only`) as they are archived.

Each database becomes `postgresql/<name>.dump.part000001...` (custom format, so
`pg_restore` can pick single tables) or `.sql.part...` (plain SQL); the globals (roles,
tablespaces) `postgresql/pg_dumpall.globals.sql.part...`. sources/dump.py says why parts.

Where to connect travels in PGHOST, PGPORT, PGUSER and PGDATABASE and the password in
PGPASSWORD: nothing secret is on a command line, and a database name is never read as
a connection string (`-d` would expand `host=... dbname=...`).

With an SSH host, the tools run there (for a server bound to that host's loopback),
through the OpenSSH client with the pinned host key (sources/remote.py). The same five
settings reach them as lines on the command's standard input, read by the shell's
`read` builtin and exported to the tool alone: never in the remote command line,
where `ps` on that host would show them.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from mackuper.sources.base import Command, Entry, Reporter, SourceError
from mackuper.sources.dump import (
    PART_SIZE,
    DumpFailed,
    DumpProcess,
    DumpSource,
    dump_entries,
    tool_version,
)
from mackuper.sources.engine_exec import command_in
from mackuper.sources.remote import command_on, explained, remote_version, run_tool, ssh_target
from mackuper.ssh import NOT_THE_TOOL, SSHError, SSHTarget, without_output_preamble

FOLDER = "postgresql"
LIST_DATABASES = (
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]")
COMMAND_TIMEOUT = 60.0
GLOBALS_NAME = f"{FOLDER}/pg_dumpall.globals.sql"
"""Roles and tablespaces; a dot in the stem, which no encoded database name has."""


def member_name(database: str, extension: str) -> str:
    """`postgresql/<database>.<extension>`, every byte outside [A-Za-z0-9_-] as %XX, so
    any name is one safe path component and no name's parts match another's wildcard."""
    encoded = "".join(
        character
        if _PLAIN_NAME.fullmatch(character)
        else "".join(f"%{b:02X}" for b in character.encode())
        for character in database
    )
    return f"{FOLDER}/{encoded}.{extension}"


_SETTINGS = ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD")
"""What reaches a tool run over SSH on its standard input (sources/remote.py)."""


@dataclass
class PostgresConnection:
    """Where the server is and who logs in; `environment()` is what every tool gets."""

    host: str
    port: int
    username: str
    password: str = ""
    maintenance_database: str = "postgres"
    ssh: SSHTarget | None = None
    """Run psql on this SSH host (sources/remote.py); None: here."""

    def environment(self, database: str | None = None) -> dict[str, str]:
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.username,
            "PGDATABASE": database or self.maintenance_database,
            "PGCONNECT_TIMEOUT": "10",
            "PGAPPNAME": "mackuper",
        }
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def query(self, sql: str, variables: dict[str, str] | None = None) -> list[str]:
        """The lines `psql` prints for `sql` (one value per row); SourceError naming the
        server's complaint when it cannot connect or the query fails (SSHError when the
        SSH host it runs on cannot be used).

        `sql` is read from standard input so psql quotes `variables` into it
        (`:'name'` as a literal, `:"name"` as an identifier).
        """
        argv = ["psql", "-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        for name, value in (variables or {}).items():
            argv += ["-v", f"{name}={value}"]
        result = run_tool(self.ssh, argv, self.environment(), sql.encode(), COMMAND_TIMEOUT)
        if result.returncode != 0:
            # psql's message spans lines ("connection ... failed: Connection refused",
            # then "Is the server running ...?"): one line of it, without the prefix.
            message = " ".join(result.stderr.decode("utf-8", "replace").split())
            message = message.removeprefix("psql: error: ")[:400]
            raise SourceError(
                f"PostgreSQL at {self.host}:{self.port}: "
                + (message or f"psql exit status {result.returncode}")
            )
        return [line for line in result.stdout.decode("utf-8", "replace").splitlines() if line]


@dataclass
class PostgresSource(DumpSource):
    connection: PostgresConnection
    databases: list[str] = field(default_factory=list)
    """Names to dump; empty: every database that accepts connections."""
    include_globals: bool = True
    dump_format: str = "custom"
    schema_only: bool = False
    exclude_tables: list[str] = field(default_factory=list)
    part_size: int = PART_SIZE
    ssh: SSHTarget | None = None
    """Run the tools on this SSH host instead of the worker."""
    container: str = ""
    """Run the tools inside this container (the engine's exec) instead of the worker."""
    engine_address: str = ""
    """The container engine's address, for `container`."""
    dumped: list[dict[str, Any]] = field(default_factory=list)
    """What the manifest lists: each database and its dump's size and tool."""

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        secrets: dict[str, Any],
        retry_seconds: float = 0.0,
        engine_address: str = "",
    ) -> PostgresSource:
        ssh = ssh_target(config, secrets, retry_seconds)
        return cls(
            ssh=ssh,
            container=str(config.get("container") or ""),
            engine_address=engine_address,
            connection=PostgresConnection(
                host=config["host"],
                port=int(config.get("port", 5432)),
                username=config["username"],
                password=str(secrets.get("password", "")),
                maintenance_database=config.get("maintenance_database") or "postgres",
            ),
            databases=list(config.get("databases", [])),
            include_globals=bool(config.get("include_globals", True)),
            dump_format=config.get("dump_format", "custom"),
            schema_only=bool(config.get("schema_only", False)),
            exclude_tables=list(config.get("exclude_tables", [])),
        )

    def describe(self) -> str:
        which = ", ".join(self.databases) if self.databases else "all databases"
        connection = self.connection
        via = f" via SSH {self.ssh.address}" if self.ssh is not None else ""
        if self.container:
            via = f" in container {self.container}"
        return (
            f"PostgreSQL {connection.username}@{connection.host}:{connection.port}{via} ({which})"
        )

    def dump_command(self) -> list[str]:
        argv = ["pg_dump", "-w", "--format", "custom" if self.dump_format == "custom" else "plain"]
        if self.dump_format == "custom":
            argv += ["--compress", "0"]  # the archive's compressor does it once, better
        if self.schema_only:
            argv.append("--schema-only")
        argv += [f"--exclude-table={pattern}" for pattern in self.exclude_tables]
        return argv

    def dumps(self, reporter: Reporter) -> Generator[Entry, None, None]:
        databases = self.databases or self._list_databases()
        if not databases:
            raise SourceError("the server shows no database to back up")
        reporter.note(f"databases to dump: {', '.join(databases)}")
        if self.include_globals:
            yield from self._dump(
                "globals",
                GLOBALS_NAME,
                ["pg_dumpall", "-w", "--globals-only"],
                None,
                reporter,
            )
        extension = "dump" if self.dump_format == "custom" else "sql"
        for database in databases:
            yield from self._dump(
                database, member_name(database, extension), self.dump_command(), database, reporter
            )

    def _dump(
        self,
        label: str,
        name: str,
        argv: list[str],
        database: str | None,
        reporter: Reporter,
    ) -> Iterator[Entry]:
        size = 0
        parts = 0
        label = f"{argv[0]} {label}"
        with self._command(argv, database) as (command, environment, feed, preamble):
            try:
                for entry in dump_entries(
                    name,
                    command,
                    environment,
                    label,
                    reporter,
                    self.part_size,
                    feed,
                    preamble=preamble,
                ):
                    size += entry.size
                    parts += 1
                    yield entry
            except DumpFailed as error:
                raise explained(self.ssh, error) from error
        tool = f"{argv[0]} on {self.ssh.address}" if self.ssh else tool_version(argv[0])
        if self.container:
            tool = f"{argv[0]} in container {self.container}"
        self.dumped.append(
            {
                "database": database or "(globals)",
                "path": name,
                "parts": parts,
                "size": size,
                "tool": tool,
            }
        )
        reporter.note(f"{label}: {size} bytes in {parts} part(s) as {name}.part*")

    @contextlib.contextmanager
    def _command(self, tool: list[str], database: str | None) -> Iterator[Command]:
        """How to run `tool`: here with the settings in the environment, or on the SSH
        host with them on standard input (the session's files removed afterwards)."""
        environment = self.connection.environment(database)
        if self.ssh is None and not self.container:
            yield Command(tool, environment)
            return
        settings = {name: environment.get(name, "") for name in _SETTINGS}
        fixed = {"PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "mackuper"}
        if self.container:
            with command_in(self.engine_address, self.container, tool, settings, fixed) as command:
                yield command
            return
        with command_on(self.ssh, tool, settings, fixed) as command:
            yield command

    def _list_databases(self) -> list[str]:
        """The databases that accept connections, asked here, on the SSH host or in the
        container."""
        if self.ssh is None and not self.container:
            return self.connection.query(LIST_DATABASES)
        tool = ["psql", "-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", LIST_DATABASES]
        with self._command(tool, None) as (command, environment, feed, preamble):
            process = DumpProcess(command, environment, "psql", feed=feed, preamble=preamble)
            try:
                assert process.stdout is not None  # noqa: S101 - an output was asked for
                output = process.stdout.read()
                process.finish(_Quiet())
                if preamble:
                    listed = without_output_preamble(output)
                    if listed is None:
                        raise SourceError(f"psql did not run: {NOT_THE_TOOL}")
                    output = listed
            finally:
                process.stop()
        return [line for line in output.decode("utf-8", "replace").splitlines() if line]


class _Quiet:
    """A reporter for a listing's standard error: only its failure matters."""

    def problem(self, message: str) -> None:
        """Not needed: a failed listing raises."""

    def note(self, message: str) -> None:
        """Not needed: a failed listing raises with its last error line."""


def tool_major(argv: list[str]) -> int | None:
    """The major version of a client tool (`pg_dump --version` -> 15), None when absent."""
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv
            [*argv, "--version"], capture_output=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(rb"(\d+)(?:\.\d+)?", result.stdout)
    return int(found.group(1)) if found and result.returncode == 0 else None


@dataclass
class Probe:
    """What "Test connection" shows: the server, what it holds, whether pg_dump fits."""

    ok: bool
    message: str
    server_version: str = ""
    databases: list[str] = field(default_factory=list)
    pg_dump_version: int | None = None


def probe(connection: PostgresConnection) -> Probe:
    """Log in, read the server version and the databases (here, or with psql on the SSH
    host); never raises."""
    try:
        rows = connection.query("SHOW server_version_num")
        databases = connection.query(LIST_DATABASES)
        version = connection.query("SHOW server_version")
    except (SourceError, SSHError) as error:
        return Probe(False, str(error))
    server_major = int(rows[0]) // 10000 if rows and rows[0].isdigit() else 0
    if connection.ssh is None:
        dump_major = tool_major(["pg_dump"])
    else:
        found_major = re.search(r"(\d+)(?:\.\d+)?", remote_version(connection.ssh, "pg_dump"))
        dump_major = int(found_major.group(1)) if found_major else None
    where = f"the SSH host {connection.ssh.address}" if connection.ssh else "this worker"
    found = Probe(True, "", version[0] if version else "", databases, dump_major)
    if dump_major is None:
        found.ok, found.message = False, f"pg_dump is not installed on {where}"
    elif dump_major < server_major:
        found.ok = False
        found.message = (
            f"pg_dump {dump_major} on {where} cannot dump a PostgreSQL {server_major} server:"
            f" install the version {server_major} client tools"
        )
    else:
        found.message = f"PostgreSQL {found.server_version}: {len(databases)} database(s) visible"
    return found
