"""The script an SQLite dump runs on an SSH host (sources/sqlite.py `_REMOTE_DUMP`), run
here through the same `dump_entries` and completion as over SSH: what sqlite3 writes to
standard error fails the dump, as it does locally, while other lines on that stream (a
login shell's greeting: tests/integration/test_database_ssh.py) do not. The script runs
inside sources/remote.py's command, as over SSH, after the greeting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mackuper.sources.base import SourceError
from mackuper.sources.dump import dump_entries
from mackuper.sources.remote import remote_command
from mackuper.sources.sqlite import _REMOTE_DUMP, REMOTE_DUMP_COMPLETION


class Notes:
    """A reporter that keeps what it is told, problems and notes alike."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def problem(self, message: str) -> None:
        self.notes.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)


def _dump(database: Path, path_dirs: str = "/usr/bin:/bin", greeting: bool = True) -> bytes:
    """The dump as the remote script gives it, after a greeting on standard error."""
    tool = ["sh", "-c", _REMOTE_DUMP, "sh", str(database), ".timeout 100"]
    script = ("echo 'welcome to the build host' >&2; " if greeting else "") + remote_command(
        tool, []
    )
    reporter = Notes()
    parts = dump_entries(
        "app.db.sql",
        ["/bin/sh", "-c", script],
        {"PATH": path_dirs},
        f"sqlite3 {database}",
        reporter,
        completion=REMOTE_DUMP_COMPLETION,
        preamble=True,
    )
    data = b""
    try:
        for entry in parts:
            with entry.open() as handle:  # type: ignore[misc]
                data += handle.read()
    finally:
        assert not any("welcome" in note or "mackuper-tool" in note for note in reporter.notes)
    return data


def _speaking(tmp_path: Path, code: int) -> str:
    """A directory with a `sqlite3` that says an error on standard error, writes an
    empty dump ending COMMIT; and exits `code`: the real one's exit-0 failure on a
    damaged schema, which no file made here reproduces."""
    shell = tmp_path / "bin"
    shell.mkdir(exist_ok=True)
    speaking = shell / "sqlite3"
    speaking.write_text(
        "#!/bin/sh\necho 'Error: in prepare, malformed database schema' >&2\n"
        f"printf 'BEGIN TRANSACTION;\\nCOMMIT;\\n'\nexit {code}\n"
    )
    speaking.chmod(0o755)
    return f"{shell}:/usr/bin:/bin"


def test_a_good_database_dumps_past_the_greeting(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES ('kept')")
    connection.close()
    dump = _dump(database)
    assert b"INSERT INTO t VALUES('kept');" in dump
    assert dump.endswith(b"COMMIT;\n")


@pytest.mark.parametrize("code", [0, 1])
def test_sqlite3_speaking_on_standard_error_fails_the_dump_with_its_words(
    tmp_path: Path, code: int
) -> None:
    database = tmp_path / "app.db"
    database.write_bytes(b"")
    with pytest.raises(SourceError) as raised:
        _dump(database, _speaking(tmp_path, code))
    assert str(raised.value) == (
        f"sqlite3 {database} did not complete the dump:"
        " Error: in prepare, malformed database schema"
    )


def test_a_missing_database_fails_with_the_scripts_words(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"exit status 97\): error: the SQLite database"):
        _dump(tmp_path / "gone.db")
