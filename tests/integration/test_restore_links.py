"""Links in restores (hardening items 1 and 5).

Item 1: a link judged by its text alone can lead outside the target through
another link restored earlier (`a/up -> ..`), and an SSH target's hard link used
to copy whatever its source pointed to. Both archives from the review are
replayed on a local and an SSH target: nothing outside is linked, read or
written, and the run names the refused entries.

Item 5: the second name of a hard-linked pair is a file like any other: it
downloads with its bytes, restores alone, and a whole backup restored again with
policy `skip` ends as success, in every tar format.
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import backed_up, local_destination, ok, restore, run_log
from tests.integration.test_restore_hostile import KEY, _store, _tar_member
from tests.servers.sshd import SSHServer
from tests.trees import file_hashes

pytestmark = pytest.mark.integration

OUTSIDE_SECRET = b"a file outside the restore target\n"


def _escaping_links_tar(depth_to_root: int) -> bytes:
    """The review's archive, plus the same trick with the link arriving first.

    Each `a/up/` counts two levels down when read as text and none on disk, so
    `passwd_link` reads as inside and leads to /etc/passwd.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _tar_member(archive, "a", type=tarfile.DIRTYPE, mode=0o755)
        _tar_member(archive, "a/up", type=tarfile.SYMTYPE, linkname="..")
        _tar_member(
            archive,
            "passwd_link",
            type=tarfile.SYMTYPE,
            linkname="a/up/" * depth_to_root + "../" * depth_to_root + "etc/passwd",
        )
        _tar_member(
            archive,
            "secret_link",
            type=tarfile.SYMTYPE,
            linkname="a/up/a/up/../outside/secret.txt",
        )
        # The escaping link comes before the link it goes through.
        _tar_member(
            archive, "early_link", type=tarfile.SYMTYPE, linkname="a/up2/../../outside/secret.txt"
        )
        _tar_member(archive, "a/up2", type=tarfile.SYMTYPE, linkname="..")
        # Links through links that stay inside are kept.
        _tar_member(archive, "releases/v2/config.yml", b"setting: 2\n", mode=0o644)
        _tar_member(archive, "current", type=tarfile.SYMTYPE, linkname="releases/v2")
        _tar_member(archive, "config", type=tarfile.SYMTYPE, linkname="current/config.yml")
        _tar_member(archive, "loop", type=tarfile.SYMTYPE, linkname="loop/x")
    return buffer.getvalue()


def _copy_through_link_tar(depth_to_outside: int) -> bytes:
    """The review's SSH archive: `f` a file, then `f` a link out through `a/up`, then
    `g` a hard link to `f`, restored with policy overwrite."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _tar_member(archive, "a", type=tarfile.DIRTYPE, mode=0o755)
        _tar_member(archive, "a/up", type=tarfile.SYMTYPE, linkname="..")
        _tar_member(archive, "f", b"the archive's own f\n", mode=0o644)
        _tar_member(
            archive,
            "f",
            type=tarfile.SYMTYPE,
            linkname="a/up/" * 3 + "../" * depth_to_outside + "outside/secret.txt",
        )
        _tar_member(archive, "g", type=tarfile.LNKTYPE, linkname="f")
    return buffer.getvalue()


@dataclass
class Place:
    """A restore target as the API takes it, and the same folder as seen from here."""

    target: dict[str, Any]
    root: Path
    outside: Path


@pytest.fixture(params=["local", "ssh"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "local":
        work = tmp_path / "work"
        (work / "outside").mkdir(parents=True)
        (work / "outside" / "secret.txt").write_bytes(OUTSIDE_SECRET)
        root = work / "target"
        return Place({"kind": "local", "path": str(root)}, root, work / "outside")
    sshd: SSHServer = request.getfixturevalue("sshd")
    user = sshd.users["password"]
    home = sshd.make_remote_tree(user.username, {"outside/secret.txt": OUTSIDE_SECRET})
    root = home / "target"
    target = {
        "kind": "ssh",
        "host": sshd.host,
        "port": sshd.port,
        "username": user.username,
        "password": user.password,
        "host_key_fingerprint": sshd.host_key_fingerprint,
        "path": str(root),
    }
    return Place(target, root, home / "outside")


def _imported_backup(api: ApiClient, storage: Path, data: bytes) -> dict[str, Any]:
    _store(storage, f"{KEY}.tar", data, "tar")
    destination = local_destination(api, storage)
    report = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]
    assert report["imported"] == 1, report
    (backup,) = ok(api, "GET", "/api/backups")["backups"]
    return backup  # type: ignore[no-any-return]


def _links_resolve_inside(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_symlink():
            resolved = Path(os.path.realpath(path))
            assert resolved == root or root in resolved.parents, (path, resolved)


def _untouched(place: Place) -> None:
    assert (place.outside / "secret.txt").read_bytes() == OUTSIDE_SECRET
    assert [path.name for path in place.outside.iterdir()] == ["secret.txt"]
    assert sorted(path.name for path in place.root.parent.iterdir()) == ["outside", "target"]


def test_links_that_lead_out_through_restored_links_are_removed_and_named(
    tmp_path: Path, api: ApiClient, runtime: Runtime, place: Place
) -> None:
    data = _escaping_links_tar(len(place.root.parts) - 1)
    backup = _imported_backup(api, tmp_path / "storage", data)

    run = restore(api, runtime, backup["id"], place.target)

    assert run["status"] == "warning"
    log = "\n".join(run_log(api, run["id"]))
    for name in ("passwd_link", "secret_link", "early_link"):
        assert f"refused {name!r}: it is a symbolic link that leads outside" in log
        assert not os.path.lexists(place.root / name)
    _links_resolve_inside(place.root)
    assert (place.root / "config").read_bytes() == b"setting: 2\n"  # through `current`
    assert (place.root / "a" / "up").readlink() == Path("..")
    assert (place.root / "loop").readlink() == Path("loop/x")  # a loop opens nothing: kept
    _untouched(place)


def test_a_hard_link_never_copies_what_a_link_points_to(
    tmp_path: Path, api: ApiClient, runtime: Runtime, place: Place
) -> None:
    depth = len(place.root.parts) - len(place.outside.parent.parts)
    backup = _imported_backup(api, tmp_path / "storage", _copy_through_link_tar(depth))

    run = restore(api, runtime, backup["id"], place.target, policy="overwrite")

    assert run["status"] == "warning", run["error"]
    log = "\n".join(run_log(api, run["id"]))
    assert "refused 'f': it is a symbolic link that leads outside" in log
    assert not os.path.lexists(place.root / "f")
    # `g` holds the archive's bytes for `f`, never the outside file's.
    assert (place.root / "g").read_bytes() == b"the archive's own f\n"
    _links_resolve_inside(place.root)
    _untouched(place)


def _hard_linked_tree(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "other").mkdir()
    (root / "docs" / "first.txt").write_bytes(b"one inode, two names\n" * 100)
    os.link(root / "docs" / "first.txt", root / "other" / "second.txt")
    os.link(root / "docs" / "first.txt", root / "docs" / "third.txt")
    (root / "plain.txt").write_text("plain\n")
    return root


@pytest.mark.parametrize("archive_format", ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst"])
def test_a_hard_links_second_name_downloads_restores_alone_and_re_restores_with_skip(
    tmp_path: Path, api: ApiClient, runtime: Runtime, archive_format: str
) -> None:
    source = _hard_linked_tree(tmp_path / "source")
    destination = local_destination(api, tmp_path / "storage")
    backup = backed_up(api, runtime, source, destination["id"], archive_format)
    expected = (source / "docs" / "first.txt").read_bytes()
    inside = str(source).lstrip("/")

    single = api.call("GET", f"/api/backups/{backup['id']}/extract?path={inside}/other/second.txt")
    assert single.status_code == 200 and single.get_data() == expected
    folder = api.call("GET", f"/api/backups/{backup['id']}/extract?path={inside}/other")
    assert folder.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(folder.get_data())) as archive:
        archive.extractall(tmp_path / "folder", filter="data")
    assert (tmp_path / "folder" / "other" / "second.txt").read_bytes() == expected

    alone = tmp_path / "alone"
    run = restore(
        api,
        runtime,
        backup["id"],
        {"kind": "local", "path": str(alone)},
        paths=[f"{inside}/other/second.txt"],
    )
    assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
    restored = alone / inside
    assert file_hashes(restored) == {"other/second.txt": file_hashes(source)["other/second.txt"]}

    whole = tmp_path / "whole"
    first = restore(api, runtime, backup["id"], {"kind": "local", "path": str(whole)})
    assert first["status"] == "success", first["error"]
    again = restore(
        api, runtime, backup["id"], {"kind": "local", "path": str(whole)}, policy="skip"
    )
    assert again["status"] == "success", (again["error"], run_log(api, again["id"]))
    assert file_hashes(whole / inside) == file_hashes(source)
    assert (
        os.stat(whole / inside / "docs" / "third.txt").st_ino
        == os.stat(whole / inside / "docs" / "first.txt").st_ino
    )
