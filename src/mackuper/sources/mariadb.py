"""MariaDB / MySQL databases, dumped by `mariadb-dump --single-transaction` as they are archived.

Each database becomes `mariadb/<name>.sql.part000001...` (sources/dump.py), or, when
none is named, the whole server one `mariadb/all.databases.sql` (a dot in the stem,
which no encoded name has). `--single-transaction` reads InnoDB tables in one
consistent snapshot without locking writers; routines, events and triggers are
included, binary columns as hex. A database's dump does not name it, so it restores
into any database: `tar -xOf ... | mariadb new_name`; the whole server's does
(`--all-databases`). The password reaches the tools as MYSQL_PWD,
never a command line; `--no-defaults` keeps the worker's own option files out.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from mackuper.sources.base import Entry, Reporter, SourceError
from mackuper.sources.dump import (
    PART_SIZE,
    DumpFailed,
    DumpSource,
    Probe,
    dump_entries,
    tool_version,
)
from mackuper.sources.remote import command_on, explained, remote_version, run_tool, ssh_target
from mackuper.ssh import SSHError, SSHTarget

FOLDER = "mariadb"
ALL_NAME = f"{FOLDER}/all.databases.sql"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]")


def member_name(database: str) -> str:
    """`mariadb/<database>.sql`, every byte outside [A-Za-z0-9_-] as %XX."""
    encoded = "".join(
        character
        if _PLAIN_NAME.fullmatch(character)
        else "".join(f"%{byte:02X}" for byte in character.encode())
        for character in database
    )
    return f"{FOLDER}/{encoded}.sql"


COMMAND_TIMEOUT = 60.0
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
SYSTEM_DATABASES = ("information_schema", "performance_schema", "sys")


def quote_name(name: str) -> str:
    """A MariaDB identifier quoted for SQL text: `name` with backticks doubled."""
    return "`" + name.replace("`", "``") + "`"


@dataclass
class MariaDBConnection:
    """Where the server is and who logs in; the password travels as MYSQL_PWD."""

    host: str
    port: int
    username: str
    password: str = field(default="", repr=False)
    ssh: SSHTarget | None = None
    """Run the client on this SSH host (sources/remote.py); None: here."""

    def environment(self) -> dict[str, str]:
        return {"MYSQL_PWD": self.password} if self.password else {}

    def options(self) -> list[str]:
        """The client options every tool gets (`--no-defaults` first: no option files)."""
        return [
            "--no-defaults",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--user={self.username}",
            "--protocol=TCP",
            "--connect-timeout=10",
            "--default-character-set=utf8mb4",
        ]

    def query(self, sql: str) -> list[list[str]]:
        """The rows the `mariadb` client prints for `sql` (read from standard input), each
        a list of tab-separated values; SourceError with the server's complaint (SSHError
        when the SSH host cannot be used)."""
        argv = ["mariadb", *self.options(), "--batch", "--skip-column-names", "--raw"]
        result = run_tool(self.ssh, argv, self.environment(), sql.encode(), COMMAND_TIMEOUT)
        if result.returncode != 0:
            message = " ".join(result.stderr.decode("utf-8", "replace").split())[:400]
            raise SourceError(
                f"MariaDB at {self.host}:{self.port}: "
                + (message or f"mariadb exit status {result.returncode}")
            )
        return [
            line.split("\t")
            for line in result.stdout.decode("utf-8", "replace").splitlines()
            if line
        ]

    def database_exists(self, name: str) -> bool:
        where = "SCHEMA_NAME = " + quote_string(name)
        rows = self.query(f"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE {where}")  # noqa: S608
        return bool(rows) and rows[0][0] != "0"


def quote_string(text: str) -> str:
    """An SQL string literal (backslashes and quotes escaped, as MariaDB reads them)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def version_of(text: str) -> tuple[int, int, int] | None:
    found = _VERSION.search(text)
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)


def dump_tool_version(line: str) -> tuple[int, int, int] | None:
    """The server release mariadb-dump comes from (`Distrib 10.11.19-MariaDB` -> 10.11.19)."""
    found = re.search(r"(?:Distrib|from)\s+(\d+\.\d+\.\d+)", line)
    return version_of(found.group(1)) if found else None


def probe(connection: MariaDBConnection) -> Probe:
    """Log in, read the server version and the databases; never raises."""
    try:
        (version,) = connection.query("SELECT VERSION()")[0]
        databases = [
            row[0]
            for row in connection.query("SHOW DATABASES")
            if row[0] not in SYSTEM_DATABASES and row[0] != "mysql"
        ]
    except (SourceError, SSHError) as error:
        return Probe(False, str(error))
    except (ValueError, IndexError):
        return Probe(False, f"MariaDB at {connection.host}:{connection.port} gave no version")
    tool = remote_version(connection.ssh, "mariadb-dump")
    found = Probe(True, "", version, databases, tool)
    server = version_of(version)
    dumper = dump_tool_version(tool)
    flavour = "MariaDB" if "mariadb" in version.lower() else "MySQL"
    where = f"the SSH host {connection.ssh.address}" if connection.ssh else "this worker"
    if not tool:
        found.ok, found.message = False, f"mariadb-dump is not installed on {where}"
    elif flavour == "MariaDB" and server and dumper and dumper[:2] < server[:2]:
        found.ok = False
        found.message = (
            f"mariadb-dump from MariaDB {dumper[0]}.{dumper[1]} is older than the server"
            f" ({server[0]}.{server[1]}) and may not know all of its objects: install the"
            f" {server[0]}.{server[1]} client tools"
        )
    else:
        found.message = f"{flavour} {version}: {len(databases)} database(s) visible"
    return found


@dataclass
class MariaDBSource(DumpSource):
    host: str
    port: int
    username: str
    password: str = ""
    databases: list[str] = field(default_factory=list)
    """Names to dump, each on its own; empty: every database in one dump."""
    part_size: int = PART_SIZE
    ssh: SSHTarget | None = None
    """Run mariadb-dump on this SSH host (for a server on its loopback); the password
    reaches it on standard input (sources/remote.py)."""
    dumped: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_config(
        cls, config: dict[str, Any], secrets: dict[str, Any], retry_seconds: float = 0.0
    ) -> MariaDBSource:
        return cls(
            host=str(config["host"]),
            port=int(config.get("port", 3306)),
            username=str(config["username"]),
            password=str(secrets.get("password", "")),
            databases=list(config.get("databases", [])),
            ssh=ssh_target(config, secrets, retry_seconds),
        )

    def describe(self) -> str:
        which = ", ".join(self.databases) if self.databases else "all databases"
        via = f" via SSH {self.ssh.address}" if self.ssh is not None else ""
        return f"MariaDB {self.username}@{self.host}:{self.port}{via} ({which})"

    def command(self) -> list[str]:
        return [
            "mariadb-dump",
            "--no-defaults",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--user={self.username}",
            "--protocol=TCP",
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
            "--hex-blob",
            "--default-character-set=utf8mb4",
        ]

    def dumps(self, reporter: Reporter) -> Generator[Entry, None, None]:
        environment = {"MYSQL_PWD": self.password} if self.password else {}
        dumps = (
            [(database, member_name(database), ["--", database]) for database in self.databases]
            if self.databases
            else [("(all)", ALL_NAME, ["--all-databases"])]
        )
        for database, name, selection in dumps:
            size = parts = 0
            label = f"mariadb-dump {database}"
            argv = self.command() + selection
            with command_on(self.ssh, argv, environment) as (command, env, feed, preamble):
                try:
                    for entry in dump_entries(
                        name,
                        command,
                        env,
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
            tool = (
                f"mariadb-dump on {self.ssh.address}" if self.ssh else tool_version("mariadb-dump")
            )
            self.dumped.append(
                {"database": database, "path": name, "parts": parts, "size": size, "tool": tool}
            )
            reporter.note(f"{label}: {size} bytes in {parts} part(s) as {name}.part*")
