"""An incremental chain's previous point by path: what change detection compares with.

A point's entries held as Python dicts cost about 860 bytes each (and 1.2 KiB while
the stored JSON is decoded): a chain of a million files held ~0.9 GiB in the worker
before a single file was read. `PreviousPoint` keeps up to IN_MEMORY entries as dicts
(every test-sized chain and most jobs: a lookup is a dict's) and moves past that into
a private temporary SQLite database (SQLite's own: in TMPDIR, unlinked as it is made,
gone when closed or when the process dies; its page cache is SQLite's default 2 MiB),
where a lookup costs ~10 µs (measured: docs/benchmarks.md).

The stored state (the database's `chain_states.state`) is zlib-compressed JSON: an
object of entries by path, one entry a line (`write_state`), so `read_state` reads it
back a line at a time and a point is never whole in memory, not even as text. A
state stored on one line (before this form) is read whole, once: the run after it
stores the new form.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any, TypeVar

from mackuper.pipeline.document import COMPACT, Writable
from mackuper.pipeline.errors import PipelineError

IN_MEMORY = 40_000
"""Entries kept as dicts (~33 MiB) before the point moves to a temporary database."""
ROWS_PER_BATCH = 1024
"""Rows a database write sends at once."""
ROWS_PER_QUERY = 500
"""Paths one `get_many` query asks for (SQLite allows 32,766 bound values since 3.32)."""
READ_PIECE = 1 << 20
"""Decompressed bytes read at a time."""
FEED_PIECE = 64 << 10
"""Compressed bytes handed to zlib at a time."""

T = TypeVar("T")
Item = tuple[str, "dict[str, Any] | str"]
"""A path and its entry, as a dict or as its JSON text (what the stored state holds)."""


class PreviousPoint(Mapping[str, dict[str, Any]]):
    """A read-only mapping of paths to entries, in the order they were added (a path
    added twice keeps its first place and its last entry, as a dict does)."""

    def __init__(self, items: Iterable[Item] = ()) -> None:
        self._memory: dict[str, dict[str, Any]] = {}
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[bytes, int, str]] = []
        self._added = 0
        self._closed = False
        try:
            batch: list[Item] = []
            for item in items:
                batch.append(item)
                if len(batch) >= ROWS_PER_BATCH:
                    self._add_batch(batch)
                    batch = []
            self._add_batch(batch)
            self._write_pending()
        except BaseException:
            self.close()
            raise

    @property
    def on_disk(self) -> bool:
        return self._db is not None

    # -- filling ---------------------------------------------------------------

    def _add_batch(self, batch: list[Item]) -> None:
        if self._db is None and len(self._memory) + len(batch) <= IN_MEMORY:
            # Entries kept as dicts are decoded a batch at a time: one json.loads shares
            # the keys' strings among the batch's entries (~600 bytes an entry less than
            # decoding each line on its own; measured in bench/manifest_memory.py).
            texts = [index for index, (_, entry) in enumerate(batch) if isinstance(entry, str)]
            if texts:
                decoded = json.loads("[" + ",".join(str(batch[i][1]) for i in texts) + "]")
                for index, entry in zip(texts, decoded, strict=True):
                    batch[index] = (batch[index][0], entry)
        for path, entry in batch:
            self._add(path, entry)

    def _add(self, path: str, entry: dict[str, Any] | str) -> None:
        if self._db is None and len(self._memory) >= IN_MEMORY and path not in self._memory:
            self._move_to_disk()
        if self._db is None:
            self._memory[path] = json.loads(entry) if isinstance(entry, str) else entry
            return
        text = entry if isinstance(entry, str) else json.dumps(entry, separators=COMPACT)
        self._pending.append((_key(path), self._added, text))
        self._added += 1
        if len(self._pending) >= ROWS_PER_BATCH:
            self._write_pending()

    def _move_to_disk(self) -> None:
        def made() -> sqlite3.Connection:
            # "": SQLite's private temporary database (deleted when closed).
            db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=OFF")
                db.execute("PRAGMA synchronous=OFF")
                db.execute(
                    "CREATE TABLE previous (path BLOB PRIMARY KEY, seq INTEGER NOT NULL,"
                    " entry TEXT NOT NULL) WITHOUT ROWID"
                )
            except BaseException:
                db.close()
                raise
            return db

        self._db = _in_database(made)
        held, self._memory = self._memory, {}
        for path, entry in held.items():
            self._add(path, entry)

    def _write_pending(self) -> None:
        if self._db is None or not self._pending:
            return
        rows, self._pending = self._pending, []
        _in_database(partial(_insert, self._db, _UPSERT, rows))

    # -- reading ---------------------------------------------------------------

    def __getitem__(self, path: str) -> dict[str, Any]:
        found: dict[str, Any] | None = self.get(path)
        if found is None:
            raise KeyError(path)
        return found

    def get(self, path: str, default: Any = None) -> Any:  # noqa: ANN401 - Mapping.get's
        if self._open() is None:
            return self._memory.get(path, default)
        return self.get_many([path]).get(path, default)

    def get_many(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        """The entries of those of `paths` this point holds: one query for up to
        ROWS_PER_QUERY of them (a query costs ~10 µs on disk, whatever it asks)."""
        db = self._open()
        if db is None:
            return {path: self._memory[path] for path in paths if path in self._memory}
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(paths), ROWS_PER_QUERY):
            keys = [_key(path) for path in paths[start : start + ROWS_PER_QUERY]]
            marks = ",".join("?" * len(keys))  # placeholders only: the paths are bound
            query = f"SELECT path, entry FROM previous WHERE path IN ({marks})"  # noqa: S608
            rows = _in_database(partial(_fetch, db, query, keys))
            # Every stored text is one JSON object (checked when read: _entries).
            entries = json.loads("[" + ",".join(entry for _, entry in rows) + "]")
            for (key, _), entry in zip(rows, entries, strict=True):
                found[_path(key)] = entry
        return found

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def __iter__(self) -> Iterator[str]:
        db = self._open()
        if db is None:
            yield from self._memory
            return
        rows = _in_database(lambda: db.execute("SELECT path FROM previous ORDER BY seq"))
        while batch := _in_database(lambda: rows.fetchmany(ROWS_PER_BATCH)):
            for (key,) in batch:
                yield _path(key)

    def __len__(self) -> int:
        db = self._open()
        if db is None:
            return len(self._memory)
        return int(_in_database(lambda: db.execute("SELECT count(*) FROM previous").fetchone()[0]))

    def absent(self, paths: Iterable[str]) -> list[str]:
        """The paths of this point that `paths` does not name (those gone since), in
        this point's order; `paths` is read once and never held whole."""
        db = self._open()
        if db is None:
            left = dict.fromkeys(self._memory)
            for path in paths:
                left.pop(path, None)
            return list(left)

        def present() -> None:
            db.execute("CREATE TABLE IF NOT EXISTS present (path BLOB PRIMARY KEY) WITHOUT ROWID")
            db.execute("DELETE FROM present")

        _in_database(present)
        batch: list[tuple[bytes]] = []
        for path in paths:
            batch.append((_key(path),))
            if len(batch) >= ROWS_PER_BATCH:
                _in_database(partial(_insert, db, _PRESENT, batch))
                batch = []
        _in_database(partial(_insert, db, _PRESENT, batch))
        gone = _in_database(
            lambda: db.execute(
                "SELECT path FROM previous WHERE path NOT IN (SELECT path FROM present)"
                " ORDER BY seq"
            ).fetchall()
        )
        return [_path(key) for (key,) in gone]

    def _open(self) -> sqlite3.Connection | None:
        """The temporary database (None: the point is in memory); ValueError once closed."""
        if self._closed:
            raise ValueError("the previous point was closed")
        return self._db

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Drops the temporary database (idempotent); the point can no longer be read."""
        if self._db is not None and not self._closed:
            self._db.close()
        self._closed = True
        self._memory = {}
        self._pending = []

    def __enter__(self) -> PreviousPoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Mapping's __eq__ compares items; a point is not hashable either way.
    __hash__ = None  # type: ignore[assignment]


def _key(path: str) -> bytes:
    """A path as the database keeps it: a file name that is not UTF-8 on disk reaches
    a manifest with lone surrogates (os.fsdecode), which SQLite's text cannot hold."""
    return path.encode("utf-8", "surrogatepass")


def _path(key: bytes) -> str:
    return key.decode("utf-8", "surrogatepass")


def _fetch(db: sqlite3.Connection, query: str, values: list[bytes]) -> list[Any]:
    return db.execute(query, values).fetchall()


_UPSERT = (
    "INSERT INTO previous VALUES (?, ?, ?) ON CONFLICT (path) DO UPDATE SET entry = excluded.entry"
)
"""A path added again keeps its first place (seq) and takes its last entry, as a dict."""
_PRESENT = "INSERT OR IGNORE INTO present VALUES (?)"


def _insert(db: sqlite3.Connection, sql: str, rows: list[Any]) -> None:
    """`rows` in one transaction (isolation_level=None: an explicit BEGIN)."""
    if rows:
        with db:
            db.execute("BEGIN")
            db.executemany(sql, rows)


def _in_database(action: Callable[[], T]) -> T:
    """`action` on the temporary database; its failures (a full or unwritable temporary
    directory) as a PipelineError that says where."""
    try:
        return action()
    except sqlite3.Error as error:
        raise PipelineError(
            "the previous point's file list could not be kept in SQLite's temporary"
            " directory (SQLITE_TMPDIR or TMPDIR, else /var/tmp or /tmp; set one to a"
            f" directory with room): {error}"
        ) from None


# -- the stored state --------------------------------------------------------


def state_of(files: Iterable[dict[str, Any]], own_name: str) -> PreviousPoint:
    """A point's manifest entries by path, every one naming the archive holding it:
    what the next run of the chain compares with (and what the database keeps)."""
    return PreviousPoint((str(item["path"]), _kept_item(item, own_name)) for item in files)


def write_state(files: Iterable[dict[str, Any]], own_name: str, out: Writable) -> None:
    """`json.dumps(state_of(files, own_name))` with one entry a line, written an entry
    at a time: a point of a million files is never held whole. It is JSON (a path
    listed twice is written twice; JSON readers, Python's included, keep its last
    value, as state_of does), and `read_state` reads it a line at a time."""
    out.write(b"{")
    separator = b"\n"
    for item in files:
        out.write(separator)
        out.write(json.dumps(str(item["path"])).encode() + b":")
        out.write(json.dumps(_kept_item(item, own_name), separators=COMPACT).encode())
        separator = b",\n"
    out.write(b"\n}")


def read_state(stored: bytes) -> PreviousPoint:
    """The point a stored state (zlib-compressed `write_state` output) holds; ValueError
    when it is not one."""
    try:
        lines = _lines(stored)
        first = next(lines, b"")
        if first != b"{":  # stored on one line, before write_state wrote a line each
            whole = json.loads(first + b"".join(lines))
            if not isinstance(whole, dict) or not all(
                isinstance(entry, dict) for entry in whole.values()
            ):
                raise ValueError("a chain state is a JSON object of JSON objects")
            return PreviousPoint(whole.items())
        return PreviousPoint(_entries(lines))
    except zlib.error as error:
        raise ValueError(f"the chain state does not decompress: {error}") from None


def _lines(stored: bytes) -> Iterator[bytes]:
    """The decompressed lines of `stored`, at most READ_PIECE decompressed bytes at a
    time (a piece of compressed JSON can hold ten times its size, or more). A line
    longer than a piece (a state stored on one line) is gathered as a list of pieces
    and joined once, not copied again with every piece."""
    inflate = zlib.decompressobj()
    unfinished: list[bytes] = []

    def split(piece: bytes) -> Iterator[bytes]:
        nonlocal unfinished
        *whole, rest = piece.split(b"\n")
        if whole:
            yield b"".join([*unfinished, whole[0]])
            yield from whole[1:]
            unfinished = []
        unfinished.append(rest)

    for start in range(0, len(stored), FEED_PIECE):
        data = stored[start : start + FEED_PIECE]
        while data:
            yield from split(inflate.decompress(data, READ_PIECE))
            data = inflate.unconsumed_tail
    yield from split(inflate.flush())
    if not inflate.eof:
        raise ValueError("the chain state is cut short")
    yield b"".join(unfinished)


_DECODER = json.JSONDecoder()


def _entries(lines: Iterator[bytes]) -> Iterator[Item]:
    """`"path":{...},` lines up to the closing brace; the entry stays JSON text, checked
    to be exactly one JSON object (~4 µs a line), so that a damaged state is refused
    here, where the run falls back to the manifest, and not at a lookup later."""
    for raw in lines:
        if raw == b"}":
            if next(lines, None) is not None:
                raise ValueError("the chain state goes on after its end")
            return
        line = raw.decode("utf-8").removesuffix(",")
        path, end = _DECODER.raw_decode(line)
        if not isinstance(path, str) or line[end : end + 1] != ":":
            raise ValueError("a chain state line is not a path and its entry")
        entry, stop = _DECODER.raw_decode(line, end + 1)
        if not isinstance(entry, dict) or stop != len(line):
            raise ValueError(f"the chain state's entry of /{path} is not one JSON object")
        yield path, line[end + 1 :]
    raise ValueError("the chain state is cut short")


def _kept_item(item: dict[str, Any], own_name: str) -> dict[str, Any]:
    kept = {key: value for key, value in item.items() if key != "offset"}
    kept.setdefault("archive", own_name)
    return kept
