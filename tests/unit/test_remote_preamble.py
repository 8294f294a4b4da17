"""What a login shell prints before a tool run over SSH (a ~/.bashrc that greets on
standard error) is neither logged nor taken for the tool's failure: sources/remote.py's
command says TOOL_STARTS first, and sources/dump.py counts the tool's standard error
from the line after it. Run here with /bin/sh standing in for ssh and the login shell;
tests/integration/test_database_ssh.py runs it through the real sshd."""

from __future__ import annotations

from typing import IO, cast

import pytest

from mackuper.sources.base import SourceError
from mackuper.sources.dump import (
    MAX_OUTPUT_PREAMBLE,
    PREAMBLE_LINES,
    DumpFailed,
    _AfterMark,
    dump_entries,
)
from mackuper.sources.remote import remote_command
from mackuper.sources.ssh_tar import TarStream
from mackuper.ssh import OUTPUT_MARK, TOOL_STARTS, SSHTarget, without_preamble
from tests.unit.test_sqlite_remote_script import Notes

GREETING = "echo 'welcome to the build host' >&2; "
TARGET = SSHTarget(host="example.org", port=22, username="backup", auth="key", host_key=None)
GREETINGS = [GREETING, "printf 'welcome, no line break' >&2; "]


def _run(
    script: str, feed: bytes | None = None, reporter: Notes | None = None
) -> tuple[bytes, list[str]]:
    """`script` (the login's output and the remote command) as a dump: its output and notes."""
    reporter = reporter or Notes()
    data = b""
    parts = dump_entries(
        "dump", ["/bin/sh", "-c", script], {}, "tool", reporter, feed=feed, preamble=True
    )
    try:
        for entry in parts:
            with entry.open() as handle:  # type: ignore[misc]
                data += handle.read()
    finally:
        reporter.notes.append("(end)")
    return data, reporter.notes


def test_the_greeting_is_dropped_and_the_tool_still_speaks() -> None:
    tool = ["sh", "-c", 'printf "%s" "$SECRET"; echo "tool: 1 table dumped" >&2']
    data, notes = _run(GREETING + remote_command(tool, ["SECRET"]), feed=b"kept\n")
    assert data == b"kept"
    assert notes == ["tool: tool: 1 table dumped", "(end)"]


@pytest.mark.parametrize("greeting", GREETINGS)
def test_a_failing_tool_is_judged_by_its_own_first_line_not_the_greeting(greeting: str) -> None:
    tool = ["sh", "-c", "echo 'Could not connect: Connection refused' >&2; exit 1"]
    with pytest.raises(DumpFailed) as raised:
        _run(greeting + remote_command(tool, []))
    assert str(raised.value) == "tool failed (exit status 1): Could not connect: Connection refused"
    assert raised.value.lines == ["Could not connect: Connection refused"]


def test_without_the_marker_every_line_counts() -> None:
    """ssh failed before any command ran (or the shell could not start): its lines are
    the reason and stay in the log, as they were before the marker existed."""
    script = "echo 'ssh: connect to host h port 22: Connection refused' >&2; exit 255"
    with pytest.raises(DumpFailed) as raised:
        _run(script)
    assert raised.value.code == 255
    assert raised.value.lines == ["ssh: connect to host h port 22: Connection refused"]
    assert str(raised.value).endswith(": ssh: connect to host h port 22: Connection refused")


def _lines(count: int, text: str) -> str:
    return f'i=1; while [ $i -le {count} ]; do echo "{text} $i" >&2; i=$((i+1)); done; '


def test_a_long_story_without_the_marker_is_kept_from_its_first_line() -> None:
    """Lines are held while the marker may still come: the first and the last
    PREAMBLE_LINES, the rest counted, so the first line (often why) is the reason."""
    reporter = Notes()
    with pytest.raises(DumpFailed) as raised:
        _run(_lines(250, "line") + "exit 255", reporter=reporter)
    assert str(raised.value) == "tool failed (exit status 255): line 1"
    assert raised.value.lines[-1] == "line 250"
    assert raised.value.lines[0] == "line 231"
    logged = [note.removeprefix("tool: ") for note in reporter.notes[:-1]]
    kept = PREAMBLE_LINES
    assert logged == [
        *(f"line {n}" for n in range(1, kept + 1)),
        f"({250 - 2 * kept} more lines)",
        *(f"line {n}" for n in range(251 - kept, 251)),
    ]


@pytest.mark.parametrize("count", [99, 100, 101, 350])
def test_the_marker_is_honoured_after_a_greeting_of_any_length(count: int) -> None:
    """A login that traces a long ~/.bashrc (set -x) says hundreds of lines first."""
    tool = ["sh", "-c", "echo 'Could not connect: Connection refused' >&2; exit 1"]
    with pytest.raises(DumpFailed) as raised:
        _run(_lines(count, "+ motd") + remote_command(tool, []))
    assert str(raised.value) == "tool failed (exit status 1): Could not connect: Connection refused"
    assert raised.value.lines == ["Could not connect: Connection refused"]


def test_the_remote_tar_is_judged_by_its_own_lines() -> None:
    """sources/ssh_tar.py reads the remote tar's standard error the same way."""
    stream = TarStream(TARGET, ["/srv"])
    stream.stderr_lines = ["welcome, no line break", TOOL_STARTS, "sh: 1: tar: Killed"]
    assert str(stream._failure(137)) == (
        "example.org did not run tar (exit 137): sh: 1: tar: Killed"
    )
    stream.stderr_lines = ["ssh: connect to host example.org port 22: Connection refused"]
    assert str(stream._failure(255)) == "example.org refused the connection on port 22"


def test_without_preamble_cuts_at_the_marker_line_only() -> None:
    said = f"welcome\n{TOOL_STARTS}\nERROR 1045: denied\n".encode()
    assert without_preamble(said) == b"ERROR 1045: denied\n"
    assert without_preamble(f"{TOOL_STARTS}\nx\n".encode()) == b"x\n"
    inside = f"not {TOOL_STARTS}\nx\n".encode()  # a line that only contains it
    assert without_preamble(inside) == inside
    assert without_preamble(b"ssh: refused\n") == b"ssh: refused\n"


@pytest.mark.parametrize("greeting", ["echo 'welcome' ; ", "printf 'no line break' ; "])
def test_a_greeting_on_standard_output_is_left_out_of_the_dump(greeting: str) -> None:
    tool = ["sh", "-c", "printf 'REDIS0011 the dump'"]
    data, notes = _run(greeting + remote_command(tool, []))
    assert data == b"REDIS0011 the dump"
    said = len(b"welcome\n") if "welcome" in greeting else len(b"no line break")
    assert notes == [
        f"tool: left out {said} bytes the SSH host's login shell printed on standard output"
        " before the tool started",
        "(end)",
    ]


def test_a_host_that_never_says_the_mark_fails_even_with_exit_status_0() -> None:
    """A forced command (authorized_keys command=...) that prints something and exits 0
    ran no tool: its output is not a dump."""
    with pytest.raises(DumpFailed, match="did not run: the SSH host ran something else"):
        _run("echo 'this account only runs the backup menu'; exit 0")


class _Trickle:
    """A pipe that hands out at most `step` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def read1(self, size: int) -> bytes:
        piece, self.data = self.data[: min(size, self.step)], self.data[min(size, self.step) :]
        return piece

    def readinto(self, view: memoryview) -> int:
        piece = self.read1(len(view))
        view[: len(piece)] = piece
        return len(piece)


@pytest.mark.parametrize("step", [1, 3, 7, 1 << 16])
def test_the_output_mark_is_found_across_reads_of_any_size(step: int) -> None:
    body = bytes(range(256)) * 50
    after = _AfterMark(cast(IO[bytes], _Trickle(b"hello" + OUTPUT_MARK + body, step)))
    out = bytearray()
    buffer = memoryview(bytearray(4096))
    while count := after.readinto(buffer):
        out += buffer[:count]
    assert bytes(out) == body
    assert after.skipped == len(b"hello") and not after.missing


def test_a_login_that_floods_standard_output_fails_the_dump() -> None:
    after = _AfterMark(cast(IO[bytes], _Trickle(b"x" * (MAX_OUTPUT_PREAMBLE + (2 << 16)), 1 << 16)))
    with pytest.raises(SourceError, match="printed over 1 MiB on standard output"):
        after.readinto(memoryview(bytearray(10)))
