"""Every archive format, opened by its standard tool, holds exactly the source tree."""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.streams import BackgroundStage, Sink
from mackuper.pipeline.zipwriter import ZipWriter
from mackuper.sources.base import Entry, EntryType
from tests.integration.engine_support import (
    RecordingHooks,
    backup,
    describe_tree,
    extract,
    make_every_kind_tree,
)
from tests.trees import b3sum, b3sum_files

pytestmark = pytest.mark.integration

FORMATS = ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip"]


@pytest.fixture(scope="module")
def every_kind_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_every_kind_tree(tmp_path_factory.mktemp("tree") / "source")


@pytest.mark.parametrize("archive_format", FORMATS)
def test_every_entry_kind_survives_the_standard_tool(
    tmp_path: Path, every_kind_tree: Path, archive_format: str
) -> None:
    source = every_kind_tree
    destination = LocalDestination(str(tmp_path / "backups"))
    result, hooks = backup(source, {1: destination}, archive_format)

    assert result.problems == []
    (artifact,) = hooks.artifacts.values()
    assert artifact["state"] == "stored"
    archive = tmp_path / "backups" / artifact["key"]
    size = archive.stat().st_size
    assert result.archive_hash == artifact["archive_hash"] == ("blake3", b3sum(archive))
    manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
    assert manifest["archive"] == {"size": size, "blake3": b3sum(archive)}
    assert "skipped" in hooks.messages("info") and "a-fifo" in hooks.messages("info")

    extract(archive, archive_format, tmp_path / "out")
    restored = tmp_path / "out" / str(source).lstrip("/")
    expected = describe_tree(source, with_dir_mtimes=archive_format != "zip")
    got = describe_tree(restored, with_dir_mtimes=archive_format != "zip")
    if archive_format == "zip":
        # Info-ZIP unzip drops control characters from names it writes; the archive
        # itself keeps the exact name.
        expected["linebreak.txt"] = expected.pop("line\nbreak.txt")
        names = zipfile.ZipFile(archive).namelist()
        assert str(source / "line\nbreak.txt").lstrip("/") in names
    assert got == expected
    if archive_format != "zip":
        # tar keeps hard links as links and sub-second mtimes in pax records.
        assert (restored / "hard-a.txt").stat().st_ino == (restored / "hard-b.txt").stat().st_ino
        assert (restored / "docs" / "readme.txt").stat().st_mtime % 1 == pytest.approx(0.5)

    by_path = {item["path"]: item for item in manifest["files"]}
    # Every file's manifest hash is the BLAKE3 `b3sum` prints for it once extracted.
    printed = b3sum_files(restored)
    if archive_format == "zip":
        printed["line\nbreak.txt"] = printed.pop("linebreak.txt")
    inside = str(source).lstrip("/") + "/"
    listed = {
        path.removeprefix(inside): item["blake3"]
        for path, item in by_path.items()
        if item["type"] == "file"
    }
    for path, item in by_path.items():  # tar's second name of a file: its first's bytes
        if item["type"] == "hardlink":
            first = item["link"].lstrip("/").removeprefix(inside)
            listed[path.removeprefix(inside)] = listed[first]
    assert listed == printed and len(printed) >= 5
    assert not any("sha256" in item for item in manifest["files"])
    assert by_path[str(source / "link-out-of-source").lstrip("/")]["link"] == "/etc/hostname"


def _many_entries(count: int) -> Iterator[Entry]:
    for index in range(count):
        payload = f"entry {index}\n".encode()
        yield Entry(
            name=f"many/{index // 1000:03d}/{index:06d}.txt",
            type=EntryType.FILE,
            size=len(payload),
            mode=0o644,
            mtime=1_700_000_000,
            open=lambda payload=payload: io.BytesIO(payload),
        )


class _FileSink:
    def __init__(self, path: Path) -> None:
        self.handle = path.open("wb")

    def write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)

    def close(self) -> None:
        self.handle.close()


def test_zip_with_more_than_65535_entries_uses_zip64_and_unzip_reads_it(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    sink: Sink = BackgroundStage(_FileSink(archive))
    writer = ZipWriter(sink, lambda count: None, level=1)
    hooks = RecordingHooks()
    for entry in _many_entries(70_000):
        assert writer.add(entry, hooks)
    writer.close()

    listing = subprocess.run(
        ["unzip", "-Z", "-t", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    assert listing.startswith("70000 files")
    tested = subprocess.run(["unzip", "-tqq", str(archive)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    one = subprocess.run(
        ["unzip", "-p", str(archive), "many/069/069999.txt"],
        capture_output=True,
        check=True,
    ).stdout
    assert one == b"entry 69999\n"
    assert hooks.logs == []


def test_file_over_4_gib_is_stored_whole_in_tar_zst(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    big = source / "big-sparse.img"
    size = 4 * 1024**3 + 4097
    with big.open("wb") as handle:
        handle.truncate(size)
        handle.seek(size - 5)
        handle.write(b"tail!")
    result, hooks = backup(source, {1: LocalDestination(str(tmp_path / "backups"))}, "tar.zst")
    assert result.problems == []
    (artifact,) = hooks.artifacts.values()
    archive = tmp_path / "backups" / artifact["key"]
    listing = subprocess.run(
        ["tar", "-I", "zstd", "-tvf", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    assert str(size) in listing
    member = str(big).lstrip("/")
    with subprocess.Popen(
        ["tar", "-I", "zstd", "-xOf", str(archive), member], stdout=subprocess.PIPE
    ) as tar:
        tail = subprocess.run(
            ["tail", "-c", "5"], stdin=tar.stdout, capture_output=True, check=True
        )
    assert tar.returncode == 0
    assert tail.stdout == b"tail!"
    assert os.path.getsize(archive) < 10 * 1024 * 1024
