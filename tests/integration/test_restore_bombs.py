"""A restore stops when an entry is larger than its manifest declares (hardening 7).

A tar.gz or zip of a few dozen KiB can hold (and honestly declare in its own
headers) 32 MiB of zeros per file. The manifest beside a Mackuper archive says
what each file really was; a member larger than that stops the restore with a
clear error before any of its bytes are written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import local_destination, ok, restore, run_log

pytestmark = pytest.mark.integration

KEY = "bomb-job/2026/11/backup_20261126_120000"
EXPANDED = 32 * 1024 * 1024


def _bomb(archive_format: str) -> bytes:
    zeros = bytes(EXPANDED)
    buffer = io.BytesIO()
    if archive_format == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("small.txt", b"fine\n")
            archive.writestr("big.bin", zeros)
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in (("small.txt", b"fine\n"), ("big.bin", zeros)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue())


@pytest.mark.parametrize("archive_format", ["tar.gz", "zip"])
def test_an_entry_larger_than_its_manifest_declares_stops_the_restore(
    tmp_path: Path, api: ApiClient, runtime: Runtime, archive_format: str
) -> None:
    data = _bomb(archive_format)
    assert len(data) < EXPANDED // 100  # a bomb: small archive, large contents
    storage = tmp_path / "storage"
    path = storage / f"{KEY}.{archive_format}"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    manifest = {
        "mackuper_manifest": 1,
        "job": {"slug": "bomb-job", "name": "Bomb"},
        "started_at": "2026-11-26T12:00:00+00:00",
        "finished_at": "2026-11-26T12:00:01+00:00",
        "format": archive_format,
        "archive": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "files": [
            {"path": "small.txt", "type": "file", "size": 5},
            {"path": "big.bin", "type": "file", "size": 1024},
        ],
    }
    path.with_name(path.name + ".manifest.json").write_text(json.dumps(manifest))
    destination = local_destination(api, storage)
    assert (
        ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]["imported"]
        == 1
    )
    (backup,) = ok(api, "GET", "/api/backups")["backups"]
    target = tmp_path / "target"

    run = restore(api, runtime, backup["id"], {"kind": "local", "path": str(target)})

    assert run["status"] == "failed"
    assert "'big.bin' is larger than the 1024 bytes its manifest declares" in run["error"]
    assert any("does not match its manifest" in line for line in run_log(api, run["id"]))
    assert (target / "small.txt").read_bytes() == b"fine\n"
    assert sorted(path.name for path in target.iterdir()) == ["small.txt"]  # no big.bin, no temp
