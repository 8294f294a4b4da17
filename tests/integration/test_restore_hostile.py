"""Done when 2: hostile archives write nothing outside the target, and the log says why."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import local_destination, ok, restore, run_log

pytestmark = pytest.mark.integration

KEY = "hostile-job/2026/11/backup_20261126_120000"


def _tar_member(archive: tarfile.TarFile, name: str, data: bytes = b"", **fields: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for field, value in fields.items():
        setattr(info, field, value)
    archive.addfile(info, io.BytesIO(data) if data else None)


def hostile_tar(outside: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _tar_member(archive, "../escape.txt", b"dot-dot")
        _tar_member(archive, "safe/../../escape-deep.txt", b"dot-dot deeper")
        _tar_member(archive, str(outside / "absolute.txt"), b"absolute")
        _tar_member(archive, "link-out", type=tarfile.SYMTYPE, linkname="../outside")
        _tar_member(archive, "link-out/through-link.txt", b"through a refused link")
        _tar_member(archive, "abs-link", type=tarfile.SYMTYPE, linkname=str(outside))
        _tar_member(archive, "planted/through-planted.txt", b"through a planted link")
        _tar_member(archive, "hard-out", type=tarfile.LNKTYPE, linkname="../outside/x")
        _tar_member(archive, "null-copy", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        _tar_member(archive, "disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0)
        _tar_member(archive, "pipe", type=tarfile.FIFOTYPE)
        info = tarfile.TarInfo("oversized-header.txt")
        info.size = 4
        info.pax_headers = {"comment": "x" * (2 * 1024 * 1024)}
        archive.addfile(info, io.BytesIO(b"oops"))
        _tar_member(archive, "inner-link", type=tarfile.SYMTYPE, linkname="good.txt")
        _tar_member(archive, "good.txt", b"still restored")
    return buffer.getvalue()


def hostile_zip(outside: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../zip-escape.txt", b"dot-dot")
        archive.writestr(str(outside / "zip-absolute.txt"), b"absolute")
        link = zipfile.ZipInfo("zip-link-out")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "../outside")
        device = zipfile.ZipInfo("zip-device")
        device.external_attr = (stat.S_IFCHR | 0o644) << 16
        archive.writestr(device, b"")
        archive.writestr("good.txt", b"still restored")
    return buffer.getvalue()


def _store(storage: Path, key: str, data: bytes, archive_format: str) -> None:
    path = storage / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    manifest = {
        "mackuper_manifest": 1,
        "job": {"id": 1, "slug": "hostile-job", "name": "Hostile job"},
        "run_id": 1,
        "started_at": "2026-11-26T12:00:00+00:00",
        "finished_at": "2026-11-26T12:00:01+00:00",
        "format": archive_format,
        "encryption": None,
        "archive": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "file_count": 0,  # no file list: these tests aim at the archive readers alone
    }
    path.with_name(path.name + ".manifest.json").write_text(json.dumps(manifest))


def _snapshot(root: Path, skip: Path) -> set[str]:
    return {
        str(path)
        for path in root.rglob("*")
        if skip not in path.parents and path != skip and "storage" not in path.parts
    }


@pytest.mark.parametrize("archive_format", ["tar", "zip"])
def test_hostile_archive_writes_nothing_outside_the_target_and_logs_each_refusal(
    tmp_path: Path, api: ApiClient, runtime: Runtime, archive_format: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "work" / "target"
    target.mkdir(parents=True)
    (target / "planted").symlink_to(outside)
    storage = tmp_path / "storage"
    data = hostile_tar(outside) if archive_format == "tar" else hostile_zip(outside)
    _store(storage, f"{KEY}.{archive_format}", data, archive_format)
    destination = local_destination(api, storage)
    imported = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]
    assert imported["imported"] == 1
    (backup,) = ok(api, "GET", "/api/backups")["backups"]
    before = _snapshot(tmp_path, target)

    run = restore(
        api, runtime, backup["id"], {"kind": "local", "path": str(target)}, policy="overwrite"
    )

    assert _snapshot(tmp_path, target) == before
    assert list(outside.iterdir()) == []
    assert run["status"] == "warning"
    assert (target / "good.txt").read_bytes() == b"still restored"
    log = "\n".join(run_log(api, run["id"]))
    expected = {
        "tar": [
            "refused '../escape.txt': its path contains '..'",
            "refused 'safe/../../escape-deep.txt': its path contains '..'",
            f"refused '{outside / 'absolute.txt'}': its path is absolute",
            "refused 'link-out': it is a symbolic link pointing outside the target",
            "refused 'abs-link': it is a symbolic link to an absolute path",
            "refused 'planted/through-planted.txt': 'planted' on its path is a symbolic link",
            "refused 'hard-out': its hard link source '../outside/x' is not valid",
            "refused 'null-copy': it is a character device",
            "refused 'disk': it is a block device",
            "refused 'pipe': it is a named pipe",
            "refused 'oversized-header.txt': its pax extended header is",
        ],
        "zip": [
            "refused '../zip-escape.txt': its path contains '..'",
            "its path is absolute",
            "refused 'zip-link-out': it is a symbolic link pointing outside the target",
            "refused 'zip-device': it is a device or pipe",
        ],
    }[archive_format]
    for line in expected:
        assert line in log
    if archive_format == "tar":
        # The refused link was never made, so its "child" landed inside the target.
        assert (target / "link-out").is_dir() and not (target / "link-out").is_symlink()
        assert (target / "inner-link").readlink() == Path("good.txt")
        assert not (target / "null-copy").exists() and not (target / "pipe").exists()
        assert (target / "planted").is_symlink()
