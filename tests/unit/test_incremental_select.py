"""What an incremental run writes and carries, entry by entry (pipeline/incremental.py
`Incremental`): the root directory's children, and the entries kept between a
directory's lookup and its children's arrival."""

from __future__ import annotations

from typing import Any

import pytest

from mackuper.pipeline import incremental
from mackuper.pipeline.chainstate import PreviousPoint
from mackuper.pipeline.incremental import ChainPlan, Incremental
from mackuper.sources.base import Entry, EntryType, Identity


def _identity(number: int, kind: str = "file") -> Identity:
    return Identity(type=kind, size=number, mtime_ns=number * 10**9, ino=number, ctime_ns=number)


def _file(name: str, number: int) -> Entry:
    return Entry(
        name=name,
        type=EntryType.FILE,
        size=number,
        mode=0o644,
        mtime=float(number),
        identity=_identity(number),
    )


def _directory(name: str, children: dict[str, int]) -> Entry:
    return Entry(
        name=name,
        type=EntryType.DIRECTORY,
        size=0,
        mode=0o755,
        mtime=0.0,
        identity=_identity(0, "directory"),
        listing=[(child, _identity(number)) for child, number in children.items()],
    )


def _previous(files: dict[str, int]) -> PreviousPoint:
    entries: dict[str, dict[str, Any]] = {
        path: {"path": path, "type": "file", "archive": "full.tar", **_identity(n).record()}
        for path, n in files.items()
    }
    return PreviousPoint(entries.items())


def _letters(entry: Entry) -> str:
    assert entry.dumpdir is not None
    return entry.dumpdir.decode()


def test_the_root_directorys_children_are_judged_by_their_own_names() -> None:
    """Backing up "/" makes a root entry named "": its children are "bin", not "/bin".
    Before, the list said Y (in this archive) for unchanged top-level files that were
    then carried, not written."""
    plan = ChainPlan(level=1, earlier=("full.tar",), previous=_previous({"kept": 1, "edited": 2}))
    chain = Incremental(plan)
    root = _directory("", {"kept": 1, "edited": 3})

    assert chain.select(root)
    assert _letters(root) == "Yedited\0Nkept\0\0"
    assert not chain.select(_file("kept", 1))
    assert chain.carried_item(_file("kept", 1)) == {
        "path": "kept",
        "type": "file",
        "archive": "full.tar",
        **_identity(1).record(),
    }
    assert chain.select(_file("edited", 3))
    assert chain.changed == {}
    assert chain.kept == {}


@pytest.mark.parametrize("on_disk", [False, True])
@pytest.mark.parametrize("keep_up_to", [2, 10])
def test_kept_entries_are_bounded_by_the_directorys_size(
    monkeypatch: pytest.MonkeyPatch, keep_up_to: int, on_disk: bool
) -> None:
    """Up to KEEP_FOR_LISTINGS_UP_TO children, the unchanged ones' entries from the
    directory's lookup wait for them; past it none are kept (a flat directory of a
    million files would hold ~0.9 GiB of them) and each is looked up again. Carried
    entries are the same either way."""
    files = {f"d/f{index}": index + 1 for index in range(5)}
    monkeypatch.setattr(incremental, "KEEP_FOR_LISTINGS_UP_TO", keep_up_to)
    if on_disk:
        monkeypatch.setattr("mackuper.pipeline.chainstate.IN_MEMORY", 0)
    previous = _previous(files)
    assert previous.on_disk == on_disk
    chain = Incremental(ChainPlan(level=1, earlier=("full.tar",), previous=previous))
    directory = _directory("d", {path[2:]: number for path, number in files.items()})

    assert chain.select(directory)
    assert len(chain.kept) == (5 if keep_up_to >= 5 else 0)
    for path, number in files.items():
        entry = _file(path, number)
        assert not chain.select(entry)
        assert chain.carried_item(entry) == previous[path]
    assert chain.kept == {}
    assert chain.changed == {}
    previous.close()
