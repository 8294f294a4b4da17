"""Incremental manifests that list only changes (issue 17): folding a chain's manifests
gives every point the whole file list its manifest used to carry itself."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mackuper.core.chain import fold_files, lists_changes
from mackuper.pipeline.chainstate import state_of
from mackuper.pipeline.filelist import FileList
from mackuper.pipeline.incremental import ChainPlan

Tree = dict[str, int]
"""path -> content version ('/'-less paths are files, 'd/...' lives in directory d)."""


def _files(tree: Tree, plan: ChainPlan) -> list[dict[str, Any]]:
    """The point's whole list as pipeline/run.py builds it: written entries in archive
    order with offsets, unchanged ones carried over from the previous point."""
    files: list[dict[str, Any]] = []
    offset = 0
    for path in sorted(tree):
        earlier = plan.previous.get(path)
        if earlier is not None and earlier["version"] == tree[path]:
            files.append({key: value for key, value in earlier.items() if key != "offset"})
            continue
        files.append({"path": path, "type": "file", "version": tree[path], "offset": offset})
        offset += 1024
    return files


def _chain(trees: list[Tree]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(archive name, manifest listing changes, manifest listing every path) per point."""
    points = []
    plan = ChainPlan(level=0)
    for level, tree in enumerate(trees):
        name = f"backup_202611{level + 1:02d}_020000.tar.zst"
        files = _files(tree, plan)
        chain = plan.chain(name)
        whole = {"chain": {**chain, "listing": None}, "files": files}
        listed = plan.listed(FileList(files))
        with listed["files"]:  # a spool, as the run writes it into the manifest
            points.append((name, {"chain": chain, **listed, "files": list(listed["files"])}, whole))
        plan = ChainPlan(
            level=level + 1, earlier=(*plan.earlier, name), previous=state_of(files, name)
        )
    return points


trees = st.lists(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d/e", "d/f", "g/h"]), st.integers(0, 2), max_size=6
    ),
    min_size=1,
    max_size=7,
)


@settings(max_examples=200, deadline=None)
@given(trees, st.data())
def test_folding_changes_gives_each_point_its_whole_list(
    history: list[Tree], data: st.DataObject
) -> None:
    points = _chain(history)
    for level, (_name, changes, whole) in enumerate(points):
        # From the full, or from a manifest listing every path written before (a mixed
        # chain: an installation upgraded in the middle of it).
        start = data.draw(st.integers(0, level), label="start")
        listings = [
            (name, whole if index == start else changes)
            for index, (name, changes, whole) in enumerate(points[: level + 1])
            if index >= start
        ]
        folded = fold_files(listings)
        assert {item["path"]: item for item in folded} == {
            item["path"]: item for item in whole["files"]
        }
        assert len(folded) == len(whole["files"])
        own = [item["offset"] for item in folded if "archive" not in item]
        assert own == sorted(own)  # what a ranged read of the point's archive needs
        assert not any("offset" in item for item in folded if "archive" in item)
        assert lists_changes(changes) is (level > 0)


def test_an_incremental_manifest_lists_what_it_stores_and_what_is_gone() -> None:
    (_, full, _), (_, second, _), (_, third, _) = _chain(
        [{"a": 0, "b": 0, "d/e": 0}, {"a": 0, "b": 1, "d/e": 0}, {"a": 0, "d/e": 0, "d/f": 0}]
    )
    assert [item["path"] for item in full["files"]] == ["a", "b", "d/e"]
    assert "removed" not in full and "listing" not in full["chain"]
    assert second["files"] == [{"path": "b", "type": "file", "version": 1, "offset": 0}]
    assert second["removed"] == [] and second["chain"]["listing"] == "changes"
    assert [item["path"] for item in third["files"]] == ["d/f"]
    assert third["removed"] == ["b"]
