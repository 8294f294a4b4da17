"""Manifests as JSON and age armor: the same bytes as before, without whole copies."""

from __future__ import annotations

import base64
import json
import random
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from mackuper.pipeline import document as document_module
from mackuper.pipeline.document import write_document
from mackuper.pipeline.encrypt import armor, dearmor


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        self.data += data


def json_document(document: dict[str, Any]) -> bytearray:
    out = _Buffer()
    write_document(document, out)
    return out.data


def _files(count: int) -> list[dict[str, Any]]:
    return [
        {
            "path": f'home/ünïcode/dir-{index // 100:04d}/file "{index}"\udcff.txt',
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
    after = {"archive": {"size": 1, "sha256": "0" * 64}, "removed": ["a", "b", "c", "d"]}
    if where == "first":
        return {"files": files, **before, **after}
    if where == "last":
        return {**before, **after, "files": files}
    if where == "alone":
        return {"files": files}
    return {**before, "files": files, **after}


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@pytest.mark.parametrize("where", ["first", "middle", "last", "alone"])
@pytest.mark.parametrize("count", [0, 1, 3, 4, 6, 7, 10])
def test_a_document_with_a_long_list_is_what_one_json_dumps_gives(
    monkeypatch: pytest.MonkeyPatch, where: str, count: int
) -> None:
    monkeypatch.setattr(document_module, "ITEMS_PER_PIECE", 3)  # full, partial, single pieces
    manifest = _manifest(_files(count), where)
    result = json_document(manifest)
    assert bytes(result) == _compact(manifest)
    assert json.loads(result) == json.loads(_compact(manifest))


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 16, 17, 100])
def test_a_document_with_a_long_text_is_what_one_json_dumps_gives(
    monkeypatch: pytest.MonkeyPatch, length: int
) -> None:
    monkeypatch.setattr(document_module, "CHARACTERS_PER_PIECE", 8)
    rng = random.Random(length)
    alphabet = 'ab"\\\n\t\u2028ü😀\udcff-'
    text = "".join(rng.choice(alphabet) for _ in range(length))
    sealed = {"mackuper_manifest": 1, "file_count": 3, "sealed_age": text, "after": [1.5]}
    assert bytes(json_document(sealed)) == _compact(sealed)


def _peak(make: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = make()
        peak = tracemalloc.get_traced_memory()[1] - before
        del kept
    finally:
        tracemalloc.stop()
    return peak


def test_a_long_file_list_is_encoded_without_doubling_the_document() -> None:
    manifest = _manifest(_files(40_000), "middle")
    size = len(_compact(manifest))  # ~9 MiB
    # The buffer (a bytearray grows by an eighth) and one piece of ITEMS_PER_PIECE items;
    # json.dumps(...).encode() peaks at twice the document (measured: 2.0).
    assert _peak(lambda: json_document(manifest)) < 1.4 * size


def _old_armor(sealed: bytes) -> bytes:
    """The armor as encrypt_bytes wrote it before (one base64, a string per line)."""
    text = base64.b64encode(sealed).decode()
    lines = [text[start : start + 64] for start in range(0, len(text), 64)]
    begin, end = "-----BEGIN AGE ENCRYPTED FILE-----", "-----END AGE ENCRYPTED FILE-----"
    return "\n".join([begin, *lines, end, ""]).encode()


@pytest.mark.parametrize(
    "size", [0, 1, 47, 48, 49, 48 * 1024 - 1, 48 * 1024, 48 * 1024 + 1, 3 * 48 * 1024 + 100]
)
def test_the_armor_is_what_it_was(size: int) -> None:
    sealed = random.Random(size).randbytes(size)
    armored = armor(bytearray(sealed))
    assert armored == _old_armor(sealed)
    if size:
        assert dearmor(armored) == sealed


def test_armoring_keeps_one_copy_of_the_armor() -> None:
    sealed = random.Random(5).randbytes(6 << 20)
    armored_size = len(_old_armor(sealed))
    # The armor's buffer, one block's base64 and lines; the old way held the whole
    # base64, its str and a str per line besides (measured: over 4x the armor).
    assert _peak(lambda: armor(sealed)) < 1.4 * armored_size
