"""A run's file list kept in a spool (pipeline/filelist.py), and what is built from it
in one pass: the manifest's `files`, the sealed part, the anomaly fingerprint and the
chain state, each the same as from a list in memory."""

from __future__ import annotations

import heapq
import io
import json
import random
from typing import Any

import pytest

from mackuper.core import anomaly
from mackuper.core.anomaly import SKETCH_SIZE, Fingerprint
from mackuper.pipeline import filelist as filelist_module
from mackuper.pipeline.age import X25519Identity
from mackuper.pipeline.chainstate import state_of, write_state
from mackuper.pipeline.document import write_document
from mackuper.pipeline.encrypt import SealedPart, dearmor, decrypt_bytes, seal_manifest
from mackuper.pipeline.filelist import FileList


def _entries(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "path": f'home/ünïcode/dir-{index // 7}/"file" {index}\udcff😀.txt',
            "type": rng.choice(["file", "file", "directory", "symlink"]),
            "size": rng.randrange(1 << 40),
            "mode": "0644",
            "mtime": 1_700_000_000.123456 + index,
            "sha256": None if index % 5 == 0 else f"{rng.getrandbits(256):064x}",
            "offset": index * 1024,
            **({"archive": f"backup_{index % 3}.tar"} if index % 4 == 0 else {}),
        }
        for index in range(count)
    ]


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 3 entries, and a spool that moves to a file after 200 bytes."""
    monkeypatch.setattr(filelist_module, "ITEMS_PER_BATCH", 3)
    monkeypatch.setattr(filelist_module, "IN_MEMORY", 200)
    monkeypatch.setattr(filelist_module, "COPY_PIECE", 64)


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 6, 7, 50])
def test_the_list_reads_back_and_writes_what_json_dumps_gives(count: int) -> None:
    entries = _entries(count)
    with FileList() as files:
        for entry in entries:
            files.append(dict(entry))
        assert len(files) == count
        assert list(files) == entries
        assert list(files) == entries  # read again: each pass starts afresh
        out = io.BytesIO()
        files.write_json(out)
        assert out.getvalue() == json.dumps(entries, separators=(",", ":")).encode()
        files.append({"path": "last"})  # appending after reading goes on at the end
        assert list(files) == [*entries, {"path": "last"}]


@pytest.mark.usefixtures("small_pieces")
def test_a_document_with_the_list_is_the_manifest_json_dumps_would_give() -> None:
    entries = _entries(20)
    with FileList(entries) as files:
        out = io.BytesIO()
        write_document({"mackuper_manifest": 1, "files": files, "removed": ["a"]}, out)
    expected = {"mackuper_manifest": 1, "files": entries, "removed": ["a"]}
    assert out.getvalue() == json.dumps(expected, separators=(",", ":")).encode()


@pytest.mark.usefixtures("small_pieces")
def test_the_sealed_part_is_age_of_the_private_json_and_opens_from_the_document() -> None:
    identity = X25519Identity.generate()
    entries = _entries(30)
    with FileList(entries) as files:
        public = seal_manifest(
            {"mackuper_manifest": 1, "files": files, "source": "host:/data"},
            [identity.recipient()],
        )
        sealed = public["sealed_age"]
        assert isinstance(sealed, SealedPart)
        out = io.BytesIO()
        write_document(public, out)
        sealed.close()
    document = json.loads(out.getvalue())
    assert document["file_count"] == 30 and "files" not in document
    armored: str = document["sealed_age"]
    assert armored.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert len(max(armored.splitlines(), key=len)) == 64
    private = json.loads(decrypt_bytes(armored.encode(), [identity]))
    assert private == {"files": entries, "source": "host:/data"}
    assert dearmor(armored.encode()).startswith(b"age-encryption.org/v1\n")


def _old_fingerprint(entries: list[dict[str, Any]], read: int, written: int) -> Fingerprint:
    """Fingerprint.of as it was: lists of every file, a set of every hash."""

    def bottom(values: list[int]) -> tuple[int, ...]:
        return tuple(sorted(heapq.nsmallest(SKETCH_SIZE, set(values))))

    files = [entry for entry in entries if entry.get("type") == "file"]
    held = [entry for entry in files if entry.get("archive")]
    return Fingerprint(
        files=len(files),
        bytes_read=read,
        bytes_written=written,
        bytes_held=sum(anomaly._size(entry) for entry in held),
        paths=bottom([anomaly._hash(str(entry["path"])) for entry in files]),
        contents=bottom(
            [
                anomaly._hash(f"{entry['path']}\0{entry.get('sha256') or entry.get('size')}")
                for entry in files
            ]
        ),
        older_files=sum(1 for entry in files if entry.get("sha256")),
    )


@pytest.mark.parametrize("count", [0, 5, SKETCH_SIZE, 3_000])
def test_the_fingerprint_in_one_pass_is_the_one_from_a_list(count: int) -> None:
    entries = _entries(count, seed=count)
    entries += [dict(entry) for entry in entries[: count // 3]]  # paths listed twice
    random.Random(count).shuffle(entries)
    with FileList(entries) as files:
        assert Fingerprint.of(files, 10, 5) == _old_fingerprint(entries, 10, 5)


@pytest.mark.usefixtures("small_pieces")
def test_the_chain_state_written_entry_by_entry_is_state_of() -> None:
    entries = _entries(40)
    entries.append({**entries[3], "size": 1})  # a path listed twice: the last one counts
    out = io.BytesIO()
    with FileList(entries) as files:
        write_state(files, "backup_9.tar.zst", out)
        expected = state_of(files, "backup_9.tar.zst")
    loaded = json.loads(out.getvalue())
    assert loaded == expected
    assert list(loaded) == list(expected)
    assert loaded[entries[3]["path"]]["size"] == 1
    assert all("offset" not in item for item in loaded.values())
    assert {item["archive"] for item in loaded.values()} == {
        "backup_0.tar",
        "backup_1.tar",
        "backup_2.tar",
        "backup_9.tar.zst",
    }


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize("in_memory", [1 << 20, 200], ids=["in-memory", "on-disk"])
def test_a_closed_list_refuses_to_be_read_instead_of_reading_empty(
    monkeypatch: pytest.MonkeyPatch, in_memory: int
) -> None:
    monkeypatch.setattr(filelist_module, "IN_MEMORY", in_memory)
    files = FileList(_entries(50))
    list(files)
    assert (files._spool._file is None) == (in_memory > 200)  # the case it says it is
    files.close()
    with pytest.raises(ValueError, match="closed"):
        list(files)
    with pytest.raises(ValueError, match="closed"):
        files.write_json(io.BytesIO())
    with pytest.raises(ValueError, match="closed"):
        files.append({"path": "late"})
