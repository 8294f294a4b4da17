"""Issue 17, Done-when 1: a chain of seven points restores, point by point, with GNU
tar alone (the README's commands) and with Mackuper, equal to the source as it was.

Between the points the source gains and loses files, has files modified in place
(the same size and the same mtime, so only the ctime tells), renamed, turned from
file to directory to symbolic link and back, hard links added and removed, and
empty directories made and removed. The modification times are set explicitly, as
GNU tar would see them, so no change hides inside one second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from mackuper.destinations.local import LocalDestination
from mackuper.encryption import generate_identity
from mackuper.models import ChainState
from mackuper.pipeline import chainstate
from mackuper.restore.archives import StoredArchive
from mackuper.restore.chain import point_manifest
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import (
    finished_run,
    local_destination,
    ok,
    restore,
    run_log,
)
from tests.servers.s3 import S3Bucket
from tests.trees import sha256_file

pytestmark = pytest.mark.integration

POINTS = 7
MTIME = 1_700_000_000
TAR_FLAGS = {
    "tar": [],
    "tar.gz": ["--gzip"],
    "tar.bz2": ["--bzip2"],
    "tar.xz": ["--xz"],
    "tar.zst": ["--zstd"],
}
VARIANTS = [
    ("tar", False),
    ("tar.gz", False),
    ("tar.bz2", False),
    ("tar.xz", False),
    ("tar.zst", False),
    ("tar", True),
    ("tar.gz", True),
    ("tar.bz2", True),
    ("tar.xz", True),
    ("tar.zst", True),
]
"""(format, age-encrypted); tar.zst is always written as independent frames (seekable)."""


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Relative path -> (type, content hash or link target, mode) and hard-link groups."""
    inodes: dict[int, list[str]] = {}
    found: dict[str, tuple[Any, ...]] = {}
    for directory, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            info = path.lstat()
            if path.is_symlink():
                found[relative] = ("symlink", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("directory", oct(info.st_mode & 0o777))
            else:
                found[relative] = ("file", sha256_file(path), oct(info.st_mode & 0o777))
                inodes.setdefault(info.st_ino, []).append(relative)
    for names in inodes.values():
        for name in names:
            found[name] = (*found[name], tuple(sorted(names)))
    return found


def touch(path: Path, step: int) -> None:
    """A fixed mtime per point: a change is seen by its ctime, not by a clock tick."""
    os.utime(path, (MTIME + step, MTIME + step), follow_symlinks=False)


def write(path: Path, text: str, step: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    touch(path, step)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def point_0(root: Path) -> None:
    write(root / "a" / "f1.txt", "first file\n", 0)
    write(root / "a" / "f2.txt", "same size A\n", 0)
    write(root / "a" / "b" / "f3.txt", "deep\n", 0)
    (root / "a" / "big.bin").write_bytes(os.urandom(300_000))
    (root / "empty").mkdir()
    (root / "a" / "link1").symlink_to("f1.txt")
    write(root / "h1.txt", "hard linked\n", 0)
    os.link(root / "h1.txt", root / "h2.txt")
    write(root / "t_file", "will become a directory\n", 0)
    write(root / "t_dir" / "inside.txt", "will become a file\n", 0)
    (root / "t_link").symlink_to("a/f1.txt")


def point_1(root: Path) -> None:
    write(root / "a" / "new.txt", "added at point 1\n", 1)
    (root / "a" / "f2.txt").write_text("same size B\n")  # same size ...
    touch(root / "a" / "f2.txt", 0)  # ... and the same mtime: only the ctime moved
    remove(root / "a" / "b" / "f3.txt")
    (root / "a" / "f1.txt").rename(root / "a" / "f1-renamed.txt")


def point_2(root: Path) -> None:
    remove(root / "t_file")
    write(root / "t_file" / "child.txt", "a file became a directory\n", 2)
    remove(root / "t_dir")
    write(root / "t_dir", "a directory became a file\n", 2)
    remove(root / "t_link")
    write(root / "t_link", "a symlink became a file\n", 2)


def point_3(root: Path) -> None:
    remove(root / "t_file")
    (root / "t_file").symlink_to("t_dir")
    (root / "e2" / "deeper").mkdir(parents=True)
    os.link(root / "h1.txt", root / "a" / "h3.txt")
    (root / "a" / "b").rename(root / "a" / "c")


def point_4(root: Path) -> None:
    remove(root / "t_dir")
    (root / "t_dir").symlink_to("e2")
    remove(root / "t_link")
    (root / "t_link").mkdir()
    remove(root / "empty")
    with (root / "h1.txt").open("a") as handle:
        handle.write("appended at point 4\n")
    touch(root / "h1.txt", 4)
    (root / "a" / "f1-renamed.txt").chmod(0o600)


def point_5(root: Path) -> None:
    """Nothing changes: the point stores only directories."""


def point_6(root: Path) -> None:
    remove(root / "h2.txt")
    remove(root / "a" / "link1")
    (root / "a" / "link1").symlink_to("f1-renamed.txt")
    write(root / "a" / "c" / "later.txt", "in a renamed directory\n", 6)
    remove(root / "a" / "new.txt")
    (root / "a" / "new.txt").mkdir()
    remove(root / "t_file")
    write(root / "t_file", "a symlink became a file again\n", 6)


CHANGES: list[Callable[[Path], None]] = [
    point_0,
    point_1,
    point_2,
    point_3,
    point_4,
    point_5,
    point_6,
]


def plain_tar_restore(archives: list[Path], identity_file: Path | None, target: Path) -> None:
    """The README's commands, each archive of the chain in order: `tar
    --listed-incremental=/dev/null -xf archive`, or for an encrypted chain `age -d -i
    key.txt archive | tar --listed-incremental=/dev/null --zstd -xf -`."""
    target.mkdir(parents=True)
    for archive in archives:
        if identity_file is None:
            command = ["tar", "--listed-incremental=/dev/null", "-xf", str(archive)]
            subprocess.run(command, cwd=target, check=True, timeout=60)
            continue
        compression = TAR_FLAGS[archive.name.removesuffix(".age").split(".", 1)[1]]
        age = subprocess.Popen(
            ["age", "-d", "-i", str(identity_file), str(archive)], stdout=subprocess.PIPE
        )
        tar = ["tar", "--listed-incremental=/dev/null", *compression, "-xf", "-"]
        subprocess.run(tar, stdin=age.stdout, cwd=target, check=True, timeout=60)
        assert age.stdout is not None
        age.stdout.close()
        assert age.wait(timeout=60) == 0


def s3_destination(api: ApiClient, bucket: S3Bucket) -> dict[str, Any]:
    server = bucket.server
    form = {
        "name": "Bucket",
        "kind": "s3",
        "bucket": bucket.name,
        "region": server.region,
        "endpoint_url": server.endpoint_url,
        "path_style": True,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
    }
    return ok(api, "POST", "/api/destinations", form)["destination"]


@pytest.mark.parametrize(("archive_format", "encrypted"), VARIANTS)
def test_seven_point_chain_restores_with_plain_tar_and_with_mackuper(
    tmp_path: Path, api: ApiClient, runtime: Runtime, archive_format: str, encrypted: bool
) -> None:
    check_chain(tmp_path, api, runtime, archive_format, encrypted, None)


def test_seven_point_chain_restores_with_every_previous_point_on_disk(
    tmp_path: Path, api: ApiClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run compares with its previous point kept in SQLite's temporary database
    (pipeline/chainstate.py, past IN_MEMORY: 0 here), renames, removals and hard links
    included; every point restores as with the points in memory."""
    moved = []
    real_move = chainstate.PreviousPoint._move_to_disk

    def counted(point: chainstate.PreviousPoint) -> None:
        moved.append(point)
        real_move(point)

    monkeypatch.setattr(chainstate, "IN_MEMORY", 0)
    monkeypatch.setattr(chainstate, "ROWS_PER_BATCH", 3)
    monkeypatch.setattr(chainstate.PreviousPoint, "_move_to_disk", counted)
    check_chain(tmp_path, api, runtime, "tar", False, None)
    assert len(moved) >= 6, "every incremental point compared on disk"


def test_seven_point_chain_on_s3_restores_with_mackuper_by_ranged_reads(
    tmp_path: Path, api: ApiClient, runtime: Runtime, s3_bucket: S3Bucket
) -> None:
    """The same chain also stored on S3; Mackuper restores every point from there."""
    check_chain(tmp_path, api, runtime, "tar.zst", False, s3_bucket)


def check_chain(
    tmp_path: Path,
    api: ApiClient,
    runtime: Runtime,
    archive_format: str,
    encrypted: bool,
    bucket: S3Bucket | None,
) -> None:
    """Seven points; each restored with GNU tar (local copies) and with Mackuper (from
    S3 when `bucket` is given) and compared with the source's snapshot at that point."""
    source = tmp_path / "source"
    source.mkdir()
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    destination_ids = [destination["id"]]
    if bucket is not None:
        destination_ids.append(s3_destination(api, bucket)["id"])
    identity, recipient = generate_identity()
    extra: dict[str, Any] = {}
    if encrypted:
        extra["encryption"] = {"mode": "recipients", "recipients": [recipient]}
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Chain",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "archive_format": archive_format,
            "schedule": "",
            "destination_ids": destination_ids,
            "backup_mode": {"mode": "incremental", "full_every_runs": POINTS},
            **extra,
        },
    )["job"]
    assert job["backup_mode"]["mode"] == "incremental"

    snapshots = []
    runs = []
    for change in CHANGES:
        change(source)
        snapshots.append(snapshot(source))
        run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
        assert run["status"] == "success", run["error"]
        runs.append(run)
    every = ok(api, "GET", f"/api/backups?job_id={job['id']}")["backups"]
    backups = {
        backup["run_id"]: backup
        for backup in every
        if backup["destination_id"] == destination["id"]
    }
    restored_from = {
        backup["run_id"]: backup
        for backup in every
        if backup["destination_id"] == destination_ids[-1]
    }
    assert len(backups) == len(restored_from) == POINTS
    inside = str(source).lstrip("/")
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(identity + "\n")

    for level, (run, expected) in enumerate(zip(runs, snapshots, strict=True)):
        backup = backups[run["id"]]
        archive = storage / backup["key"]
        manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
        if not encrypted:
            chain = manifest["chain"]
            assert chain["level"] == level
            assert chain["archives"][-1] == archive.name and len(chain["archives"]) == level + 1
        names = [backups[earlier["id"]]["key"] for earlier in runs[: level + 1]]
        archives = [storage / key for key in names]

        by_tar = tmp_path / f"tar-{level}"
        plain_tar_restore(archives, identity_file if encrypted else None, by_tar)
        assert snapshot(by_tar / inside) == expected, f"GNU tar, point {level}"

        by_mackuper = tmp_path / f"mackuper-{level}"
        decryption = {"decryption": {"identity": identity}} if encrypted else {}
        restored = restore(
            api,
            runtime,
            restored_from[run["id"]]["id"],
            {"kind": "local", "path": str(by_mackuper)},
            **decryption,
        )
        assert restored["status"] == "success", restored["error"]
        assert snapshot(by_mackuper / inside) == expected, f"Mackuper, point {level}"

    # Unchanged files are never read: point 5 changed nothing, so it read no file's
    # bytes and stored only the directories (with their lists).
    assert runs[5]["bytes_read"] == 0
    assert "level 5 of the chain" in " ".join(run_log(api, runs[5]["id"]))
    # Its manifest lists only what its archive stores, and nothing removed; the whole
    # list, folded from the chain's manifests, names the full as big.bin's holder.
    if not encrypted:
        backup = backups[runs[5]["id"]]
        archive = storage / backup["key"]
        manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
        assert manifest["chain"]["listing"] == "changes" and manifest["removed"] == []
        assert {item["type"] for item in manifest["files"]} == {"directory"}
        assert not any("archive" in item for item in manifest["files"])
        whole = point_manifest(
            StoredArchive(LocalDestination(str(storage)), backup["key"]), manifest
        )
        assert whole is not None and len(whole["files"]) > len(manifest["files"])
        held = {item["path"]: item.get("archive") for item in whole["files"]}
        assert held[f"{inside}/a/big.bin"] == manifest["chain"]["full"]
        assert held[f"{inside}/a"] is None  # a directory: from the point's own archive


def chain_job(
    api: ApiClient, source: Path, destination_id: int, archive_format: str = "tar.zst"
) -> dict[str, Any]:
    body = {
        "name": "Chain",
        "source_kind": "local",
        "source": {"paths": [str(source)], "excludes": []},
        "archive_format": archive_format,
        "schedule": "",
        "destination_ids": [destination_id],
        "backup_mode": {"mode": "incremental", "full_every_runs": None},
    }
    job: dict[str, Any] = ok(api, "POST", "/api/jobs", body)["job"]
    return job


def backed_up_point(api: ApiClient, runtime: Runtime, job_id: int) -> dict[str, Any]:
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job_id}/run")["run"])
    assert run["status"] == "success", run["error"]
    (backup,) = [
        backup
        for backup in ok(api, "GET", f"/api/backups?job_id={job_id}")["backups"]
        if backup["run_id"] == run["id"]
    ]
    return {"run": run, "backup": backup}


def test_one_file_of_a_point_comes_from_the_one_archive_holding_it(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source = tmp_path / "source"
    write(source / "big.bin", "", 0)
    (source / "big.bin").write_bytes(os.urandom(2_000_000))
    write(source / "notes.txt", "version 1\n", 0)
    destination = local_destination(api, tmp_path / "storage")
    job = chain_job(api, source, destination["id"])
    full = backed_up_point(api, runtime, job["id"])
    write(source / "notes.txt", "version 2, longer\n", 1)
    middle = backed_up_point(api, runtime, job["id"])
    write(source / "added.txt", "at point 2\n", 2)
    newest = backed_up_point(api, runtime, job["id"])
    inside = str(source).lstrip("/")

    cases = [("big.bin", full), ("notes.txt", middle), ("added.txt", newest)]
    for name, holder in cases:
        target = tmp_path / f"one-{name}"
        run = restore(
            api,
            runtime,
            newest["backup"]["id"],
            {"kind": "local", "path": str(target)},
            paths=[f"{inside}/{name}"],
        )
        assert run["status"] == "success", run["error"]
        assert (target / inside / name).read_bytes() == (source / name).read_bytes()
        assert sorted(path.name for path in (target / inside).iterdir()) == [name]
        said = [line for line in run_log(api, run["id"]) if "incremental chain" in line]
        name_of_holder = holder["backup"]["name"]
        assert said == [
            f"a point of an incremental chain: reading 1 of its archives ({name_of_holder})"
        ]
        # Only the holder's bytes were read: the full's 2 MB are not read for the others.
        assert (run["bytes_read"] > 1_000_000) is (name == "big.bin")
        # The Restore page's download of the file takes it from the same archive.
        single = api.call(
            "GET", f"/api/backups/{newest['backup']['id']}/extract?path={inside}/{name}"
        )
        assert single.status_code == 200, single.get_data(as_text=True)
        assert single.get_data() == (source / name).read_bytes()

    # The folder, and the whole point as one plain tar made from the chain's archives.
    folder = api.call("GET", f"/api/backups/{newest['backup']['id']}/extract?path={inside}")
    whole = api.call("GET", f"/api/backups/{newest['backup']['id']}/download?shape=tar")
    for response, target, inside_target in (
        (folder, tmp_path / "folder", source.name),
        (whole, tmp_path / "whole", inside),
    ):
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Content-Type"] == "application/x-tar"
        target.mkdir()
        subprocess.run(
            ["tar", "-xf", "-"], input=response.get_data(), cwd=target, check=True, timeout=60
        )
        assert snapshot(target / inside_target) == snapshot(source)
    assert "filename*=UTF-8''Chain%20-%20backup_" in whole.headers["Content-Disposition"]
    assert whole.headers["Content-Disposition"].endswith(".tar")


def test_a_missing_archive_breaks_the_chain_and_the_next_run_is_a_full(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source = tmp_path / "source"
    write(source / "a.txt", "one\n", 0)
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    job = chain_job(api, source, destination["id"])
    backed_up_point(api, runtime, job["id"])
    write(source / "b.txt", "two\n", 1)
    middle = backed_up_point(api, runtime, job["id"])
    write(source / "c.txt", "three\n", 2)
    third = backed_up_point(api, runtime, job["id"])
    assert "level 2 of the chain" in " ".join(run_log(api, third["run"]["id"]))

    (storage / middle["backup"]["key"]).unlink()  # behind Mackuper's back
    refused = restore(
        api, runtime, third["backup"]["id"], {"kind": "local", "path": str(tmp_path / "out")}
    )
    assert refused["status"] == "failed"

    after = backed_up_point(api, runtime, job["id"])
    log = run_log(api, after["run"]["id"])
    assert (
        f"chain broken: {middle['backup']['name']} is missing at Local disk;"
        " this run starts a new full"
    ) in log
    archive = storage / after["backup"]["key"]
    manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
    assert manifest["chain"]["level"] == 0 and manifest["chain"]["archives"] == [archive.name]
    by_tar = tmp_path / "tar"
    plain_tar_restore([archive], None, by_tar)
    assert snapshot(by_tar / str(source).lstrip("/")) == snapshot(source)


def test_incremental_needs_a_tar_format_and_existing_jobs_stay_full(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source = tmp_path / "source"
    write(source / "a.txt", "one\n", 0)
    destination = local_destination(api, tmp_path / "storage")
    body = {
        "name": "Zip chain",
        "source_kind": "local",
        "source": {"paths": [str(source)], "excludes": []},
        "archive_format": "zip",
        "schedule": "",
        "destination_ids": [destination["id"]],
        "backup_mode": {"mode": "incremental", "full_every_runs": 7},
    }
    refused = api.call("POST", "/api/jobs", body)
    assert refused.status_code == 422
    assert "ZIP archives are full backups only" in refused.get_json()["fields"]["backup_mode.mode"]
    assert ok(api, "GET", "/api/jobs")["jobs"] == []
    # An SSH source's chain is made by the remote GNU tar: SFTP transfer cannot make one
    # (test_ssh_incremental_chain.py has the chains), and a database dump is full-only.
    remote = api.call(
        "POST",
        "/api/jobs",
        {**body, "archive_format": "tar.zst", "source_kind": "ssh", "source": {"transfer": "sftp"}},
    )
    assert remote.status_code == 422
    assert "made by GNU tar on the server" in remote.get_json()["fields"]["backup_mode.mode"]
    dump = api.call(
        "POST",
        "/api/jobs",
        {**body, "archive_format": "tar.zst", "source_kind": "redis", "source": {}},
    )
    assert dump.status_code == 422
    assert "local folders and SSH sources only" in dump.get_json()["fields"]["backup_mode.mode"]

    plain = ok(api, "POST", "/api/jobs", {**body, "backup_mode": None})["job"]
    assert plain["backup_mode"] == {
        "mode": "full",
        "full_every_runs": None,
        "full_every_days": None,
    }
    job = chain_job(api, source, destination["id"], "tar.gz")
    # Left out, the mode is kept: switching the chain's job to ZIP is refused too.
    edit = {key: value for key, value in body.items() if key != "backup_mode"}
    switched = api.call("PUT", f"/api/jobs/{job['id']}", {**edit, "name": "Chain"})
    assert switched.status_code == 422
    assert "full backups only" in switched.get_json()["fields"]["backup_mode.mode"]
    wrong = api.call(
        "PUT",
        f"/api/jobs/{job['id']}",
        {**body, "name": "Chain", "archive_format": "tar", "backup_mode": {"mode": "sometimes"}},
    )
    assert wrong.status_code == 422 and "backup_mode.mode" in wrong.get_json()["fields"]

    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{plain['id']}/run")["run"])
    assert run["status"] == "success", run["error"]
    (backup,) = ok(api, "GET", f"/api/backups?job_id={plain['id']}")["backups"]
    archive = tmp_path / "storage" / backup["key"]
    manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
    assert "chain" not in manifest


def _two_file_chain(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> tuple[Path, Path, dict[str, Any], dict[str, Any]]:
    """A chain job over kept.txt and edited.txt, its full made: (source, storage,
    destination, job)."""
    source = tmp_path / "source"
    write(source / "kept.txt", "unchanged\n", 0)
    write(source / "edited.txt", "one\n", 0)
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    job = chain_job(api, source, destination["id"])
    backed_up_point(api, runtime, job["id"])
    return source, storage, destination, job


def _edited_point(
    api: ApiClient, runtime: Runtime, source: Path, storage: Path, job: dict[str, Any]
) -> Path:
    """edited.txt changed, the next point made: a level 1 storing only that file; its
    archive."""
    write(source / "edited.txt", "two, longer\n", 1)
    point = backed_up_point(api, runtime, job["id"])
    archive = storage / point["backup"]["key"]
    manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
    assert manifest["chain"]["level"] == 1
    stored = {Path(item["path"]).name for item in manifest["files"] if item["type"] == "file"}
    assert stored == {"edited.txt"}
    return archive


def test_a_lost_state_is_rebuilt_from_the_manifest_or_the_next_run_is_a_full(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source, storage, destination, job = _two_file_chain(tmp_path, api, runtime)
    with runtime.sessions.begin() as session:
        session.execute(delete(ChainState))
    # Rebuilt from the full's manifest: only the edited file was stored.
    _edited_point(api, runtime, source, storage, job)
    # Lost again after a point listing only its changes: the state is folded from the
    # chain's manifests, so an unchanged run stores no file.
    with runtime.sessions.begin() as session:
        session.execute(delete(ChainState))
    unchanged = backed_up_point(api, runtime, job["id"])
    assert unchanged["run"]["bytes_read"] == 0
    archive = storage / unchanged["backup"]["key"]
    manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
    assert manifest["chain"]["level"] == 2
    assert [item["type"] for item in manifest["files"]] == ["directory"]

    # A sealed manifest cannot be read back with the job's public key alone.
    _identity, recipient = generate_identity()
    sealed = ok(
        api,
        "PUT",
        f"/api/jobs/{job['id']}",
        {
            "name": "Chain",
            "source_kind": "local",
            "source": {"paths": [str(source)], "excludes": []},
            "archive_format": "tar.zst",
            "schedule": "",
            "destination_ids": [destination["id"]],
            "encryption": {"mode": "recipients", "recipients": [recipient]},
        },
    )["job"]
    assert sealed["backup_mode"]["mode"] == "incremental"
    backed_up_point(api, runtime, job["id"])
    with runtime.sessions.begin() as session:
        session.execute(delete(ChainState))
    after = backed_up_point(api, runtime, job["id"])
    assert any(
        line.startswith("chain broken: the file list of backup_") and "cannot be read" in line
        for line in run_log(api, after["run"]["id"])
    )


def test_a_damaged_stored_state_is_rebuilt_from_the_manifest(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    """A state that does not read back (pipeline/chainstate.py `read_state`) is treated
    as lost, not as a failed run: before, every later run of the job failed on it."""
    source, storage, _destination, job = _two_file_chain(tmp_path, api, runtime)
    with runtime.sessions.begin() as session:
        (row,) = session.scalars(select(ChainState)).all()
        row.state = row.state[: len(row.state) // 2]  # cut short
    archive = _edited_point(api, runtime, source, storage, job)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
    (edited,) = out.rglob("edited.txt")
    assert edited.read_text() == "two, longer\n"


def test_the_cli_restores_a_point_from_its_chain(
    tmp_path: Path, api: ApiClient, runtime: Runtime, data_dir: Path
) -> None:
    source = tmp_path / "source"
    write(source / "old.txt", "from the full\n", 0)
    write(source / "gone.txt", "deleted at point 1\n", 0)
    destination = local_destination(api, tmp_path / "storage")
    job = chain_job(api, source, destination["id"])
    backed_up_point(api, runtime, job["id"])
    remove(source / "gone.txt")
    write(source / "new.txt", "added at point 1\n", 1)
    point = backed_up_point(api, runtime, job["id"])

    env = {key: value for key, value in os.environ.items() if not key.startswith("MACKUPER_")}
    env["MACKUPER_DATA_DIR"] = str(data_dir)
    target = tmp_path / "target"
    done = subprocess.run(
        [sys.executable, "-m", "mackuper", "restore", str(point["backup"]["id"])]
        + ["--to", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(target / str(source).lstrip("/")) == snapshot(source)
