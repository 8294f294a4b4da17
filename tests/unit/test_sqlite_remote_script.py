"""The script an SQLite dump runs on an SSH host (sources/sqlite.py `_REMOTE_DUMP`): what
sqlite3 writes to standard error fails the dump, as it does locally, while the login
shell's own noise on that stream (tests/integration/test_database_ssh.py) does not."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from mackuper.sources.sqlite import _REMOTE_DUMP


def _run(database: Path, path_dirs: str = "/usr/bin:/bin") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603
        ["/bin/sh", "-c", _REMOTE_DUMP, "sh", str(database), ".timeout 100"],
        capture_output=True,
        env={"PATH": path_dirs},
        check=False,
        timeout=60,
    )


def test_a_good_database_dumps_with_nothing_on_standard_error(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES ('kept')")
    connection.close()
    done = _run(database)
    assert (done.returncode, done.stderr) == (0, b"")
    assert b"INSERT INTO t VALUES('kept');" in done.stdout
    assert done.stdout.endswith(b"COMMIT;\n")


def test_sqlite3_speaking_on_standard_error_fails_the_script_with_its_words(
    tmp_path: Path,
) -> None:
    """sqlite3 exits 0 after some failures and says so on standard error only (a damaged
    schema: an empty dump that still ends COMMIT;): the script exits 98 with the text."""
    database = tmp_path / "app.db"
    database.write_bytes(b"")
    shell = tmp_path / "bin"
    shell.mkdir()
    speaking = shell / "sqlite3"  # the real one's exit-0 failure, which no file here makes
    speaking.write_text(
        "#!/bin/sh\necho 'Error: in prepare, malformed database schema' >&2\n"
        "printf 'BEGIN TRANSACTION;\\nCOMMIT;\\n'\nexit 0\n"
    )
    speaking.chmod(0o755)
    done = _run(database, f"{shell}:/usr/bin:/bin")
    assert done.returncode == 98
    assert done.stderr == b"Error: in prepare, malformed database schema\n"
    missing = _run(tmp_path / "gone.db")
    assert missing.returncode == 97
    assert b"gone.db does not exist" in missing.stderr
