"""The previous point of a chain (pipeline/chainstate.py): the same answers as a dict
in memory and past IN_MEMORY in its temporary database, and the stored state read
back a line at a time, in its new form and in the one-line form stored before."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zlib
from contextlib import ExitStack
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mackuper.pipeline import chainstate
from mackuper.pipeline.chainstate import PreviousPoint, read_state, state_of, write_state

ODD_PATHS = [
    "a",
    "b/c",
    'quote"d',
    'colon":{"x":1}',
    "back\\slash",
    "new\nline",
    "tab\tand, comma",
    "ünïcode/😀",
    "not-utf8-\udce9",
    "}",
]


def _small(in_memory: int = 3, batch: int = 2) -> ExitStack:
    """IN_MEMORY, ROWS_PER_BATCH and ROWS_PER_QUERY made small, so that a few entries
    reach the database and a few paths take several queries."""
    stack = ExitStack()
    stack.enter_context(mock.patch.object(chainstate, "IN_MEMORY", in_memory))
    stack.enter_context(mock.patch.object(chainstate, "ROWS_PER_BATCH", batch))
    stack.enter_context(mock.patch.object(chainstate, "ROWS_PER_QUERY", batch + 1))
    return stack


def _stored(files: list[dict[str, Any]], own_name: str = "backup_2.tar") -> bytes:
    out = io.BytesIO()
    write_state(files, own_name, out)
    return zlib.compress(out.getvalue(), 6)


items = st.lists(
    st.tuples(
        st.sampled_from(ODD_PATHS),
        st.fixed_dictionaries({"size": st.integers(0, 2**40), "archive": st.sampled_from("xy")}),
    ),
    max_size=14,
)


@settings(max_examples=150, deadline=None)
@given(items=items, gone=st.lists(st.sampled_from(ODD_PATHS)), in_memory=st.integers(0, 6))
def test_a_point_answers_as_a_dict_does_in_memory_and_on_disk(
    items: list[tuple[str, dict[str, Any]]], gone: list[str], in_memory: int
) -> None:
    expected = dict(items)  # a path added twice: first place, last entry
    with _small(in_memory), PreviousPoint(items) as point:
        assert point.on_disk == (len(expected) > in_memory)
        assert list(point) == list(expected)
        assert len(point) == len(expected)
        assert point == expected
        for path in ODD_PATHS:
            assert point.get(path) == expected.get(path)
            assert (path in point) == (path in expected)
        asked = [*ODD_PATHS, "missing", *gone]
        assert point.get_many(asked) == {path: expected[path] for path in asked if path in expected}
        present = [path for path in ODD_PATHS if path not in gone]
        assert point.absent(iter(present)) == [path for path in expected if path not in present]
        assert point.absent([]) == list(expected)  # asked twice: the same table, emptied


@settings(max_examples=60, deadline=None)
@given(items=items, in_memory=st.integers(0, 6))
def test_the_stored_state_reads_back_as_state_of(
    items: list[tuple[str, dict[str, Any]]], in_memory: int
) -> None:
    files = [{"path": path, "offset": 512, **entry} for path, entry in items]
    stored = _stored(files)
    assert json.loads(zlib.decompress(stored)) == state_of(files, "backup_2.tar")
    with _small(in_memory), read_state(stored) as point:
        expected = state_of(files, "backup_2.tar")
        assert point == expected
        assert list(point) == list(expected)
        assert all("offset" not in entry for entry in point.values())


def test_a_state_stored_on_one_line_reads_back_the_same() -> None:
    files = [{"path": path, "size": index} for index, path in enumerate(ODD_PATHS)]
    one_line = {path: {**item, "archive": "a.tar"} for item in files for path in [item["path"]]}
    stored = zlib.compress(json.dumps(one_line, separators=(",", ":")).encode())
    for in_memory in (100, 3):
        with _small(in_memory), read_state(stored) as point:
            assert point.on_disk == (in_memory == 3)
            assert point == one_line
            assert list(point) == list(one_line)


@pytest.mark.parametrize(
    "stored",
    [
        b"not zlib at all",
        zlib.compress(b"[1, 2]"),
        zlib.compress(b'{\n"a":{"size":1},\n"b":{"size":2}'),  # no closing brace
        zlib.compress(b'{\n"a":{"size":1}\n}\n"b":{}'),  # more after the end
        zlib.compress(b'{\n"a" {"size":1}\n}'),  # no colon
        zlib.compress(b'{\n["a"]:{"size":1}\n}'),  # the key is not a path
        zlib.compress(b'{\n"a":{"size":1}\n}')[:-3],  # cut short
        zlib.compress(b'{\n"a":{"size":1},\n"b":{"size":2,},\n"c":{"size":3}\n}'),
        zlib.compress(b'{\n"a":{"x":1}garbage}\n}'),
        zlib.compress(b'{"a/f":1}'),  # the one-line form, an entry that is not an object
        # Two damaged lines that, decoded together, would give b another line's entry:
        zlib.compress(b'{\n"a":{},{},\n"b":{"a":"},\n"c":{"}\n}'),
    ],
    ids=[
        "not-zlib",
        "not-an-object",
        "no-end",
        "after-end",
        "no-colon",
        "key",
        "truncated",
        "bad-entry",
        "trailing",
        "one-line-not-objects",
        "shifting",
    ],
)
@pytest.mark.parametrize("in_memory", [100, 0])
def test_a_damaged_state_is_a_value_error(stored: bytes, in_memory: int) -> None:
    """Refused when read, in memory and on disk alike: the run then rebuilds the point
    from its manifest (runs/chain.py), where a lookup failing later would fail the run."""
    with _small(in_memory), pytest.raises(ValueError, match=r".+"):
        read_state(stored)


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b"")), min_size=1),
    read_piece=st.integers(1, 64),
    feed_piece=st.integers(1, 64),
)
def test_lines_come_back_whole_across_pieces(
    lines: list[bytes], read_piece: int, feed_piece: int
) -> None:
    stored = zlib.compress(b"\n".join(lines))
    with (
        mock.patch.object(chainstate, "READ_PIECE", read_piece),
        mock.patch.object(chainstate, "FEED_PIECE", feed_piece),
    ):
        assert list(chainstate._lines(stored)) == lines


@pytest.mark.parametrize("in_memory", [100, 1])
def test_a_closed_point_refuses_to_be_read(in_memory: int) -> None:
    with _small(in_memory):
        point = PreviousPoint([("a", {"size": 1}), ("b", {"size": 2})])
    point.close()
    point.close()  # idempotent
    for read in (lambda: point.get("a"), lambda: list(point), lambda: len(point)):
        with pytest.raises(ValueError, match="closed"):
            read()
    with pytest.raises(ValueError, match="closed"):
        point.absent([])


def test_a_temporary_directory_that_cannot_hold_the_point_says_so() -> None:
    """A full disk, as a child process whose files may not grow past 1 MiB, and enough
    entries (~6 MiB) to spill SQLite's 2 MiB page cache to its file."""
    script = (
        "import resource, signal\n"
        "from mackuper.pipeline import chainstate\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "chainstate.IN_MEMORY = 2\n"
        "try:\n"
        "    chainstate.PreviousPoint((str(i), {'pad': 'x' * 200}) for i in range(30000))\n"
        "except chainstate.PipelineError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "could not be kept in SQLite's temporary directory" in done.stdout, done
    assert "TMPDIR" in done.stdout
    assert "Traceback" not in done.stderr
