"""How a dump from a tool that can exit 0 after a failure is judged (sources/dump.py)."""

from __future__ import annotations

import io
from typing import cast

import pytest

from mackuper.sources.dump import Completion, DumpProcess, _Watched, fill

SQLITE = Completion(ending=b"COMMIT;\n", error_mark=b"/****", silent=True)


class _Dribble(io.RawIOBase):
    """`data` in reads of at most `step` bytes, as a pipe gives them."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.at = data, step, 0

    def readinto(self, view: memoryview) -> int:  # type: ignore[override]
        count = min(len(view), self.step, len(self.data) - self.at)
        view[:count] = self.data[self.at : self.at + count]
        self.at += count
        return count


class _Quiet:
    last_error = ""


def _judged(data: bytes, step: int, part: int = 7) -> str:
    watched = _Watched(_Dribble(data, step), SQLITE)  # type: ignore[arg-type]
    buffer = bytearray(part)
    while fill(watched, buffer) == part:  # type: ignore[arg-type]
        pass
    return watched.failure(cast(DumpProcess, _Quiet()))


GOOD = (
    b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n"
    b"INSERT INTO t VALUES('/**** not a line start');\nCOMMIT;\n"
)
LOCKED = (
    b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n"
    b"/**** ERROR: (5) database is locked *****/\nROLLBACK; -- due to errors\n"
)


@pytest.mark.parametrize("step", [1, 2, 5, 6, 7, 64, 4096])
def test_a_complete_dump_passes_and_an_error_line_fails_wherever_the_reads_cut(step: int) -> None:
    assert _judged(GOOD, step) == ""
    assert _judged(LOCKED, step) == "ERROR: (5) database is locked"
    ending_good = LOCKED.replace(b"ROLLBACK; -- due to errors", b"COMMIT;")
    assert _judged(ending_good, step) == "ERROR: (5) database is locked"
    at_start = b"/****** CORRUPTION ERROR *******/\n" + GOOD
    assert _judged(at_start, step) == "CORRUPTION ERROR"
    long_tail = GOOD[:-8] + b"x" * 10_000 + b"\nROLLBACK; -- due to errors\n"
    assert (
        _judged(long_tail, step)
        == "its output ends with 'ROLLBACK; -- due to errors', not 'COMMIT;'"
    )
    assert _judged(b"", step) == "its output ends with nothing, not 'COMMIT;'"


def test_a_silent_tool_that_wrote_an_error_fails() -> None:
    watched = _Watched(_Dribble(b"BEGIN TRANSACTION;\nCOMMIT;\n", 4096), SQLITE)  # type: ignore[arg-type]
    fill(watched, bytearray(100))  # type: ignore[arg-type]
    noisy = _Quiet()
    noisy.last_error = "Error: in prepare, malformed database schema (?) (11)"
    assert watched.failure(cast(DumpProcess, noisy)) == noisy.last_error
