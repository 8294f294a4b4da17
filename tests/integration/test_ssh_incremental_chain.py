"""Issue 17: an SSH source in tar mode makes its incremental chain with the remote GNU
tar's own `--listed-incremental`, the snapshot file kept by Mackuper (core/snar.py).

Between the points the remote tree gains, changes and loses files, has a file and a
directory renamed, and a file turned into a directory and back; every point restores
with GNU tar alone (the README's commands) and with Mackuper, equal to the tree as it
was. The snapshot file lives on the server only while tar runs, in a private
temporary directory, and is gone afterwards, also when the connection is cut.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from mackuper.encryption import generate_identity
from mackuper.models import ChainState
from mackuper.runtime import Runtime
from mackuper.sources.ssh import SSHSource
from mackuper.sources.ssh_tar import TarStream
from mackuper.ssh import SSHError
from tests.conftest import ApiClient
from tests.integration.restore_support import finished_run, local_destination, ok, restore, run_log
from tests.integration.ssh_support import ssh_backup, target_for
from tests.integration.test_incremental_chain import plain_tar_restore, snapshot
from tests.servers.sshd import SSHServer

pytestmark = pytest.mark.integration

USER = "key"


def point_0(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f1.txt").write_text("first file\n")
    (root / "a" / "f2.txt").write_text("same size A\n")
    (root / "a" / "b" / "f3.txt").write_text("deep\n")
    (root / "a" / "big.bin").write_bytes(os.urandom(300_000))
    (root / "empty").mkdir()
    (root / "a" / "link1").symlink_to("f1.txt")
    (root / "h1.txt").write_text("hard linked\n")
    os.link(root / "h1.txt", root / "h2.txt")
    (root / "t_file").write_text("will become a directory\n")
    (root / "t_dir").mkdir()
    (root / "t_dir" / "inside.txt").write_text("will become a file\n")


def point_1(root: Path) -> None:
    """An addition, a change in place (same size), a deletion."""
    (root / "a" / "new.txt").write_text("added at point 1\n")
    (root / "a" / "f2.txt").write_text("same size B\n")
    (root / "a" / "f1.txt").unlink()


def point_2(root: Path) -> None:
    """A directory and a file renamed; a file turned into a directory and back."""
    (root / "a" / "b").rename(root / "a" / "b2")
    (root / "a" / "new.txt").rename(root / "a" / "renamed.txt")
    (root / "t_file").unlink()
    (root / "t_file").mkdir()
    (root / "t_file" / "now.txt").write_text("a directory now\n")
    (root / "t_dir" / "inside.txt").unlink()
    (root / "t_dir").rmdir()
    (root / "t_dir").write_text("a file now\n")


def point_3(root: Path) -> None:
    """Nothing changes."""


def point_4(root: Path) -> None:
    """An empty directory removed, a big file grown, a hard link removed, a new subtree."""
    (root / "empty").rmdir()
    with (root / "a" / "big.bin").open("ab") as grown:
        grown.write(b"appended\n")
    (root / "h2.txt").unlink()
    (root / "new" / "deep").mkdir(parents=True)
    (root / "new" / "deep" / "x.txt").write_text("x\n")


CHANGES: list[Callable[[Path], None]] = [point_0, point_1, point_2, point_3, point_4]


def leftovers(username: str) -> set[str]:
    """The directories `mktemp -d` made for the SSH user in the temporary directory."""
    uid = pwd.getpwnam(username).pw_uid
    found: set[str] = set()
    for path in Path(tempfile.gettempdir()).glob("tmp.*"):
        try:  # another test's `mktemp -d` directory may go between glob and lstat
            mode = path.lstat()
        except FileNotFoundError:
            continue
        if mode.st_uid == uid and stat.S_ISDIR(mode.st_mode):
            found.add(path.name)
    return found


def ssh_chain_job(
    api: ApiClient,
    sshd: SSHServer,
    tree: Path,
    destination_id: int,
    excludes: list[str] | None = None,
    archive_format: str = "tar",
    extra: dict[str, Any] | None = None,
) -> int:
    user = sshd.users[USER]
    body = {
        "name": "Remote chain",
        "source_kind": "ssh",
        "source": {
            "host": sshd.host,
            "port": sshd.port,
            "username": user.username,
            "auth": "key",
            "private_key": user.private_key,
            "passphrase": user.passphrase or "",
            "host_key": sshd.host_public_key,
            "paths": [str(tree)],
            "excludes": excludes or [],
            "transfer": "tar",
        },
        "archive_format": archive_format,
        "schedule": "",
        "destination_ids": [destination_id],
        "backup_mode": {"mode": "incremental", "full_every_runs": None},
        **(extra or {}),
    }
    created = api.call("POST", "/api/jobs", body)
    assert created.status_code == 201, created.get_data(as_text=True)
    job_id: int = created.get_json()["job"]["id"]
    return job_id


def backed_up(api: ApiClient, runtime: Runtime, job_id: int) -> dict[str, Any]:
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job_id}/run")["run"])
    assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
    return run


@pytest.mark.parametrize(("archive_format", "encrypted"), [("tar", False), ("tar.zst", True)])
def test_ssh_chain_restores_every_point_with_plain_tar_and_with_mackuper(
    api: ApiClient,
    runtime: Runtime,
    sshd: SSHServer,
    tmp_path: Path,
    archive_format: str,
    encrypted: bool,
) -> None:
    username = sshd.users[USER].username
    tree = sshd.make_remote_tree(username, {})
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    identity, recipient = generate_identity()
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(identity + "\n")
    sealed = {"encryption": {"mode": "recipients", "recipients": [recipient]}}
    job_id = ssh_chain_job(
        api, sshd, tree, destination["id"], None, archive_format, sealed if encrypted else None
    )
    before = leftovers(username)

    runs, snapshots = [], []
    for change in CHANGES:
        change(tree)
        snapshots.append(snapshot(tree))
        runs.append(backed_up(api, runtime, job_id))
        assert leftovers(username) == before  # the snapshot file is gone from the server
    backups = {
        backup["run_id"]: backup
        for backup in ok(api, "GET", f"/api/backups?job_id={job_id}")["backups"]
    }
    inside = str(tree).lstrip("/")
    for level, (run, expected) in enumerate(zip(runs, snapshots, strict=True)):
        backup = backups[run["id"]]
        archive = storage / backup["key"]
        manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
        assert manifest["chain"]["level"] == level
        archives = [storage / backups[earlier["id"]]["key"] for earlier in runs[: level + 1]]

        by_tar = tmp_path / f"tar-{level}"
        plain_tar_restore(archives, identity_file if encrypted else None, by_tar)
        assert snapshot(by_tar / inside) == expected, f"GNU tar, point {level}"

        by_mackuper = tmp_path / f"mackuper-{level}"
        decryption = {"decryption": {"identity": identity}} if encrypted else {}
        target = {"kind": "local", "path": str(by_mackuper)}
        restored = restore(api, runtime, backup["id"], target, **decryption)
        assert restored["status"] == "success", restored["error"]
        assert snapshot(by_mackuper / inside) == expected, f"Mackuper, point {level}"

    # The unchanged point sent no file's bytes: its archive holds the directories only,
    # each with GNU tar's list of its contents, and its manifest names big.bin's holder.
    assert runs[3]["bytes_read"] == 0
    if encrypted:
        return  # the file lists below are sealed; the restores above opened them
    archive = storage / backups[runs[3]["id"]]["key"]
    manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
    assert {item["type"] for item in manifest["files"]} == {"directory"}
    assert manifest["removed"] == []
    # Point 1 stored the added and changed files only.
    archive = storage / backups[runs[1]["id"]]["key"]
    manifest = json.loads((archive.parent / (archive.name + ".manifest.json")).read_text())
    stored = {item["path"] for item in manifest["files"] if item["type"] != "directory"}
    assert stored == {f"{inside}/a/new.txt", f"{inside}/a/f2.txt"}
    assert manifest["removed"] == [f"{inside}/a/f1.txt"]
    import subprocess

    subprocess.run(["/work/main/.venv/bin/python", "/tmp/sshinc_peek.py", str(storage)])


def test_a_lost_snapshot_starts_a_new_full(
    api: ApiClient, runtime: Runtime, sshd: SSHServer, tmp_path: Path
) -> None:
    username = sshd.users[USER].username
    tree = sshd.make_remote_tree(username, {"a.txt": "a\n"})
    destination = local_destination(api, tmp_path / "storage")
    job_id = ssh_chain_job(api, sshd, tree, destination["id"])
    backed_up(api, runtime, job_id)
    second = backed_up(api, runtime, job_id)
    assert any("incremental on" in line for line in run_log(api, second["id"]))

    with runtime.sessions.begin() as session:
        session.execute(
            update(ChainState).where(ChainState.job_id == job_id).values(remote_snapshot=None)
        )
    third = backed_up(api, runtime, job_id)
    said = " ".join(run_log(api, third["id"]))
    assert "snapshot of" in said and "this run starts a new full" in said
    fourth = backed_up(api, runtime, job_id)
    assert any("level 1" in line for line in run_log(api, fourth["id"]))


def test_the_snapshot_file_is_removed_when_the_connection_is_cut(
    sshd: SSHServer, tmp_path: Path
) -> None:
    username = sshd.users[USER].username
    tree = sshd.make_remote_tree(username, {"big.bin": os.urandom(8 << 20), "b.txt": "b"})
    before = leftovers(username)
    stream = TarStream(target_for(sshd, USER), [str(tree)], b"")

    class Quiet:
        def problem(self, message: str) -> None: ...

        def note(self, message: str) -> None: ...

    entries = stream.entries(Quiet())
    next(entries)  # the remote tar runs: its snapshot file exists now
    during = leftovers(username) - before
    assert len(during) == 1
    (made,) = during
    assert (Path(tempfile.gettempdir()) / made).stat().st_mode & 0o777 == 0o700
    stream.close()  # the connection is cut in the middle of the stream
    deadline = time.monotonic() + 10
    while leftovers(username) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(username) == before


def test_an_incremental_over_sftp_is_refused_at_run_time_with_a_clear_message(
    sshd: SSHServer, tmp_path: Path
) -> None:
    """The job form refuses it (test_incremental_chain.py); a job changed behind the
    form's back still makes no chain over SFTP, and says why."""
    tree = sshd.make_remote_tree(sshd.users[USER].username, {"a.txt": "a"})
    source = SSHSource(target_for(sshd, USER), [str(tree)], transfer="sftp")
    source.snapshot = b""
    with pytest.raises(SSHError) as raised:
        ssh_backup(source, tmp_path / "out")
    assert "need GNU tar on the server and tar transfer" in str(raised.value)
    assert not list((tmp_path / "out").rglob("*.tar"))


def test_excluded_paths_are_left_out_of_every_point_and_its_lists(
    api: ApiClient, runtime: Runtime, sshd: SSHServer, tmp_path: Path
) -> None:
    """Excludes apply to the remote stream: what they match is neither stored nor in
    its directory's list, so neither GNU tar nor Mackuper restores or misses it."""
    username = sshd.users[USER].username
    files = {"keep/a.txt": "a", "keep/c.bin": "c", "skip/s.txt": "s", "top.txt": "t"}
    tree = sshd.make_remote_tree(username, files)
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    job_id = ssh_chain_job(api, sshd, tree, destination["id"], ["skip", "*.bin"])

    def wanted() -> dict[str, tuple[Any, ...]]:
        return {
            path: value
            for path, value in snapshot(tree).items()
            if not path.startswith("skip") and not path.endswith(".bin")
        }

    expected, runs = [wanted()], [backed_up(api, runtime, job_id)]
    (tree / "keep" / "a.txt").write_text("A")
    (tree / "keep" / "d.bin").write_text("d")
    (tree / "skip" / "s.txt").write_text("S")
    (tree / "keep" / "new.txt").write_text("n")
    expected.append(wanted())
    runs.append(backed_up(api, runtime, job_id))
    backups = {
        backup["run_id"]: backup
        for backup in ok(api, "GET", f"/api/backups?job_id={job_id}")["backups"]
    }
    inside = str(tree).lstrip("/")
    for level, want in enumerate(expected):
        archives = [storage / backups[run["id"]]["key"] for run in runs[: level + 1]]
        by_tar = tmp_path / f"tar-{level}"
        plain_tar_restore(archives, None, by_tar)
        assert snapshot(by_tar / inside) == want, f"GNU tar, point {level}"
        by_mackuper = tmp_path / f"mackuper-{level}"
        backup_id = backups[runs[level]["id"]]["id"]
        restored = restore(api, runtime, backup_id, {"kind": "local", "path": str(by_mackuper)})
        assert restored["status"] == "success", restored["error"]
        assert snapshot(by_mackuper / inside) == want, f"Mackuper, point {level}"
        listed = subprocess.run(
            ["tar", "-tvv", "--incremental", "-f", str(archives[-1])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "s.txt" not in listed and ".bin" not in listed
