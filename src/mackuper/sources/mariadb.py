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

from mackuper.sources.base import Entry, Reporter
from mackuper.sources.dump import PART_SIZE, DumpSource, dump_entries, tool_version

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


@dataclass
class MariaDBSource(DumpSource):
    host: str
    port: int
    username: str
    password: str = ""
    databases: list[str] = field(default_factory=list)
    """Names to dump, each on its own; empty: every database in one dump."""
    part_size: int = PART_SIZE
    dumped: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: dict[str, Any], secrets: dict[str, Any]) -> MariaDBSource:
        return cls(
            host=str(config["host"]),
            port=int(config.get("port", 3306)),
            username=str(config["username"]),
            password=str(secrets.get("password", "")),
            databases=list(config.get("databases", [])),
        )

    def describe(self) -> str:
        which = ", ".join(self.databases) if self.databases else "all databases"
        return f"MariaDB {self.username}@{self.host}:{self.port} ({which})"

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
            for entry in dump_entries(name, argv, environment, label, reporter, self.part_size):
                size += entry.size
                parts += 1
                yield entry
            self.dumped.append(
                {
                    "database": database,
                    "path": name,
                    "parts": parts,
                    "size": size,
                    "tool": tool_version("mariadb-dump"),
                }
            )
            reporter.note(f"{label}: {size} bytes in {parts} part(s) as {name}.part*")
