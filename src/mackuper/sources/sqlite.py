"""SQLite databases, dumped as SQL text by the `sqlite3` shell's `.dump` as they are archived.

`.dump` reads inside one transaction, so the text is one consistent snapshot; in WAL
mode a reader never blocks writers (they append to the WAL meanwhile), and in the
other journal modes writers wait only while a page is read. Nothing is copied to disk:
the text streams into the archive as `sqlite/<name>.sql.part000001...` (sources/dump.py),
and `tar -xOf backup.tar.zst --wildcards 'sqlite/app.db.sql.part*' | sqlite3 new.db`
restores it. The database is opened read-only (`-readonly`), so a wrong path is an
error and never an empty new database.

The shell waits up to `busy_ms` for a lock (`.timeout`; it gives up at once without
one, and a writer's checkpoint can hold the lock a reader needs for a moment). On a
lock it could not get, or a damaged page, `.dump` writes an `ERROR` comment (and
`ROLLBACK; -- due to errors`) or, for a damaged schema, an error on standard error, and
still exits 0: such a dump fails the run (DUMP_COMPLETION, sources/dump.py), where it
used to be stored as a backup holding no data. `-init /dev/null`: a `~/.sqliterc`
(`.echo on`, say) never changes what the dump writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any

from mackuper.sources.base import Entry, Reporter, SourceError
from mackuper.sources.dump import (
    PART_SIZE,
    Completion,
    DumpFailed,
    DumpSource,
    Probe,
    dump_entries,
    tool_version,
)
from mackuper.sources.remote import command_on, explained, remote_version, run_tool, ssh_target
from mackuper.ssh import SSHError, SSHTarget

COMMAND_TIMEOUT = 60.0
BUSY_MS = 30_000
"""How long the dump waits for a lock another connection holds (the shell's `.timeout`)."""
DUMP_COMPLETION = Completion(ending=b"COMMIT;\n", error_mark=b"/****", silent=True)
"""A complete `.dump` ends `COMMIT;`, has no line of the shell's own error comments
(`/**** ERROR: ...`, `/****** CORRUPTION ERROR *******/`: the dump writes a newline
in data as `char(10)`, so no data line starts that way) and wrote nothing to standard
error (a damaged schema page: `Error: in prepare, malformed database schema`, and an
empty dump ending `COMMIT;`)."""
SPOKEN = "mackuper-sqlite: "
"""What the remote script (_REMOTE_DUMP) puts before each line sqlite3 writes to
standard error."""
REMOTE_DUMP_COMPLETION = replace(DUMP_COMPLETION, silent=False, spoken=SPOKEN)
"""Over SSH, standard error also carries what the login shell prints (a ~/.bashrc that
writes to it), so it cannot be required silent: sqlite3's own lines there are marked
(SPOKEN) and any of them fails the dump, as `silent` does here."""
_DUMP_OPTIONS = "-init /dev/null -readonly -bail"
"""The shell's options for a dump, here and in the remote script: no ~/.sqliterc,
read-only (a wrong path is an error, never a new database), stop at the first error."""
_LOOK = "PRAGMA journal_mode; SELECT count(*) FROM sqlite_master WHERE type = 'table';"


_MISSING = 97
_REMOTE_LOOK = (
    f'if [ ! -f "$1" ]; then exit {_MISSING}; fi; exec sqlite3 -readonly -bail -batch "$1" "$2"'
)


def look(path: str, ssh: SSHTarget | None = None) -> tuple[str, int]:
    """The journal mode and table count of the database at `path` (here or on the SSH
    host), opened read-only by the sqlite3 shell that dumps it; SourceError naming the
    path when it cannot, SSHError when the SSH host cannot be used."""
    if ssh is None and not os.path.isfile(path):
        raise SourceError(f"the SQLite database {path} does not exist")
    argv = ["sqlite3", "-readonly", "-bail", "-batch", path, _LOOK]
    if ssh is not None:
        argv = ["sh", "-c", _REMOTE_LOOK, "sh", path, _LOOK]
    result = run_tool(ssh, argv, {}, timeout=COMMAND_TIMEOUT)
    if ssh is not None and result.returncode == _MISSING:
        raise SourceError(f"the SQLite database {path} does not exist on {ssh.address}")
    lines = result.stdout.decode("utf-8", "replace").split()
    if result.returncode != 0 or len(lines) != 2 or not lines[1].isdigit():
        why = " ".join(result.stderr.decode("utf-8", "replace").split())[:300]
        raise SourceError(f"{path}: {why or 'not an SQLite database'}")
    return lines[0], int(lines[1])


def probe(paths: list[str], ssh: SSHTarget | None = None) -> Probe:
    """Open each database read-only as the backup will (here or on the SSH host);
    never raises."""
    if ssh is not None:
        try:
            run_tool(ssh, ["true"], {})  # the SSH host's own failure, said plainly
        except (SourceError, SSHError) as error:
            return Probe(False, str(error))
    tool = remote_version(ssh, "sqlite3")
    if not tool:
        where = f"the SSH host {ssh.address}" if ssh else "this worker"
        return Probe(False, f"sqlite3 is not installed on {where}")
    version = tool.split()[0]
    found = Probe(True, "", version, [], tool)
    problems = []
    for path in paths:
        try:
            journal, tables = look(path, ssh)
        except (SourceError, SSHError) as error:
            problems.append(str(error))
            continue
        found.databases.append(f"{path}: {tables} table(s), journal mode {journal}")
    if problems:
        found.ok, found.message = False, "; ".join(problems)
    else:
        found.message = f"sqlite3 {version} opens {len(paths)} database(s) read-only"
    return found


FOLDER = "sqlite"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]")


def member_name(path: str) -> str:
    """`sqlite/<file name>.sql`, every byte outside [A-Za-z0-9_.-] as %XX."""
    encoded = "".join(
        character
        if _PLAIN_NAME.fullmatch(character)
        else "".join(f"%{byte:02X}" for byte in character.encode())
        for character in os.path.basename(path)
    )
    return f"{FOLDER}/{encoded}.sql"


@dataclass
class SQLiteSource(DumpSource):
    paths: list[str]
    part_size: int = PART_SIZE
    ssh: SSHTarget | None = None
    """The database files are on this SSH host, and sqlite3 runs there."""
    busy_ms: int = BUSY_MS
    dumped: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        secrets: dict[str, Any] | None = None,
        retry_seconds: float = 0.0,
    ) -> SQLiteSource:
        ssh = ssh_target(config, secrets or {}, retry_seconds)
        return cls(list(config.get("paths", [])), ssh=ssh)

    def describe(self) -> str:
        via = f" on SSH {self.ssh.address}" if self.ssh is not None else ""
        return "SQLite " + ", ".join(self.paths) + via

    def dumps(self, reporter: Reporter) -> Generator[Entry, None, None]:
        for path in self.paths:
            if self.ssh is None and not os.path.isfile(path):
                raise SourceError(f"the SQLite database {path} does not exist")
            name = member_name(path)
            size = parts = 0
            wait = f".timeout {int(self.busy_ms)}"
            argv = ["sqlite3", *_DUMP_OPTIONS.split(), "-cmd", wait, path, ".dump"]
            if self.ssh is not None:
                argv = ["sh", "-c", _REMOTE_DUMP, "sh", path, wait]
            completion = DUMP_COMPLETION if self.ssh is None else REMOTE_DUMP_COMPLETION
            with command_on(self.ssh, argv, {}) as (command, env, feed, preamble):
                try:
                    for entry in dump_entries(
                        name,
                        command,
                        env,
                        f"sqlite3 {path}",
                        reporter,
                        self.part_size,
                        feed,
                        completion=completion,
                        preamble=preamble,
                    ):
                        size += entry.size
                        parts += 1
                        yield entry
                except DumpFailed as error:
                    raise explained(self.ssh, error) from error
            tool = f"sqlite3 on {self.ssh.address}" if self.ssh else tool_version("sqlite3")
            self.dumped.append(
                {"database": path, "path": name, "parts": parts, "size": size, "tool": tool}
            )
            reporter.note(f"sqlite3 {path}: {size} bytes in {parts} part(s) as {name}.part*")


_REMOTE_DUMP = (
    'if [ ! -f "$1" ]; then echo "error: the SQLite database $1 does not exist" >&2; exit 97; fi;'
    f' {{ {{ sqlite3 {_DUMP_OPTIONS} -cmd "$2" "$1" .dump 2>&1 1>&3 3>&-; c=$?;'
    ' [ "$c" -eq 0 ] || echo "sqlite3 exited with status $c"; }'
    f" | sed 's/^/{SPOKEN}/' >&2; }} 3>&1"
)
"""On an SSH host: the same dump, after the same check that the file is there. The dump
goes to standard output as it is made; what sqlite3 writes to standard error (and a
non-zero exit, said in words) goes to standard error with SPOKEN before each line, so
it is told apart from the login shell's lines without a temporary file."""
