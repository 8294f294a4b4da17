"""The manifest's JSON: the same bytes as one json.dumps, built without its memory peak."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from mackuper.pipeline import run
from mackuper.pipeline.run import manifest_document


def _files(count: int) -> list[dict[str, Any]]:
    return [
        {
            "path": f'home/ünïcode/dir-{index // 100:04d}/file "{index}".txt',
            "type": "file",
            "size": index,
            "mode": "0644",
            "mtime": 1_700_000_000.25 + index,
            "sha256": f"{index:064x}",
            "offset": index * 1024,
        }
        for index in range(count)
    ]


def _manifest(files: list[dict[str, Any]], where: str) -> dict[str, Any]:
    before = {"mackuper_manifest": 1, "job": {"id": 1, "files": []}, "format": "tar"}
    after = {"archive": {"size": 1, "sha256": "0" * 64}, "chain": {"files": ["x"]}}
    if where == "first":
        return {"files": files, **before, **after}
    if where == "last":
        return {**before, **after, "files": files}
    if where == "alone":
        return {"files": files}
    return {**before, "files": files, **after}


@pytest.mark.parametrize("where", ["first", "middle", "last", "alone"])
@pytest.mark.parametrize("count", [0, 1, 3, 4, 6, 7, 10])
def test_the_document_is_what_one_json_dumps_gives(
    monkeypatch: pytest.MonkeyPatch, where: str, count: int
) -> None:
    monkeypatch.setattr(run, "FILES_PER_PIECE", 3)  # pieces of 3: full, partial and one
    manifest = _manifest(_files(count), where)
    expected = json.dumps(manifest, separators=(",", ":")).encode()
    document = manifest_document(manifest)
    assert bytes(document) == expected
    assert json.loads(document) == manifest


def test_a_long_file_list_is_encoded_without_doubling_the_document() -> None:
    manifest = _manifest(_files(40_000), "middle")
    size = len(json.dumps(manifest, separators=(",", ":")))  # ~8 MiB
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        document = manifest_document(manifest)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert len(document) == size
    # The buffer (bytearray growth keeps at most an eighth spare) and one piece of
    # FILES_PER_PIECE items; json.dumps(...).encode() peaks at twice the document.
    assert peak < 1.3 * size, (peak, size)
