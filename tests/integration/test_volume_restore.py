"""A volume backup restored into a named volume through the engine (issue 18).

A volume with known files (UTF-8 names, a symbolic link, a hard link, an empty
folder, modes and owners other than root's) is backed up by a volume job, then
restored by restore runs through podman's Docker-compatible API: into a new volume,
into a stopped container's volume (refused while it holds files, until the request
says to replace them), and only selected paths. Each restored volume is read back
through the engine (`GET /containers/{id}/archive` extracted by GNU tar) and its
files' SHA-256 compared with the source tree; owners, modes and link targets are
listed by `find` in a container that mounts it. podman 4.3's archive endpoint reads
every file as root's, so its backups store root as every owner; owners are checked with
a volume backup whose archive holds them as Docker's endpoint reports them (the same
tree's entries named `volumes/<name>/...`, written by Mackuper's pipeline and imported
from its destination). A running container's volume, a
volume name that is not one, a missing volume and a new one that exists are refused
with a 4xx before anything is queued, and change nothing.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.encryption import generate_identity
from mackuper.models import Artifact
from mackuper.pipeline.errors import Cancelled
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.restore.archives import open_members
from mackuper.restore.stored import stored_archive
from mackuper.restore.volume import VolumeReport, VolumeStream, VolumeTarget, restore_volume
from mackuper.runtime import Runtime
from mackuper.sources.base import Entry, Reporter
from mackuper.sources.local import LocalSource
from tests.conftest import ApiClient
from tests.integration.docker_support import COMMAND, run_container, unique, volume_with
from tests.integration.engine_support import RecordingHooks
from tests.integration.restore_support import finished_run, local_destination, ok, run_log
from tests.integration.test_restore_cli import _mackuper
from tests.servers.podman import BASE_IMAGE, PodmanEngine, podman
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration

OWNER = (1234, 4321)


def known_tree(root: Path) -> Path:
    """make_small_tree, plus UTF-8 names, a hard link, modes and owners not root's."""
    tree = make_small_tree(root)
    (tree / "docs" / "readme.txt").chmod(0o640)
    (tree / "Ünïcödé 文件").mkdir()
    (tree / "Ünïcödé 文件" / "日本語 ファイル.txt").write_text("こんにちは\n")
    (tree / "Ünïcödé 文件" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (tree / "Ünïcödé 文件" / "run.sh").chmod(0o750)
    os.link(tree / "docs" / "readme.txt", tree / "readme-hardlink.txt")
    (tree / "empty").chmod(0o700)
    tree.chmod(0o750)  # the volume's own folder
    for path in [tree / "docs", tree / "docs" / "readme.txt", tree / "Ünïcödé 文件" / "run.sh"]:
        os.lchown(path, *OWNER)
    os.lchown(tree / "link-to-readme", *OWNER)
    return tree


def listing(engine: PodmanEngine, volume: str, owners: bool = True) -> list[str]:
    """Every entry of the volume, its own folder first (path ""), as
    `path|type|uid|gid|mode|link` (without uid and gid unless `owners`), from `find` in a
    container that mounts it."""
    found = podman(
        "run", "--rm", "--network=none", "-v", f"{volume}:/v:ro", BASE_IMAGE,
        "find", "/v", "-printf", "%P|%y|%U|%G|%m|%l\\n",
    )  # fmt: skip
    lines = found.stdout.splitlines()
    if not owners:
        lines = ["|".join(line.split("|")[:2] + line.split("|")[4:]) for line in lines]
    return sorted(lines)


class AsDockerStoresIt(LocalSource):
    """The tree's entries named as a volume backup names them, with their owners."""

    def __init__(self, tree: Path, volume: str) -> None:
        super().__init__([str(tree)])
        self.local = str(tree).lstrip("/")
        self.volume = volume

    def _name(self, name: str) -> str:
        return f"volumes/{self.volume}" + name.removeprefix(self.local)

    def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
        for entry in super().iter_entries(reporter):
            link = entry.link_target
            if entry.type == "hardlink":
                link = self._name(link)
            yield dataclasses.replace(entry, name=self._name(entry.name), link_target=link)


def owned_backup(
    api: ApiClient, job: dict[str, Any], destination: dict[str, Any], tree: Path, volume: str
) -> dict[str, Any]:
    """A backup of the job whose archive holds the tree's owners (see the docstring)."""
    plan = BackupPlan(
        job_id=job["id"],
        job_slug=job["slug"],
        job_name=job["name"],
        run_id=10_000,
        archive_format="tar.gz",
        compression_level=None,
        source=AsDockerStoresIt(tree, volume),
        destinations={destination["id"]: LocalDestination(destination["config"]["path"])},
        started_at=datetime.now(UTC),
    )
    result = run_backup(plan, RecordingHooks())
    listed = subprocess.run(
        ["tar", "-tvzf", str(next(Path(destination["config"]["path"]).rglob(result.archive_name)))],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"{OWNER[0]}/{OWNER[1]}" in listed  # GNU tar reads the owners in the archive
    report = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]
    assert report["imported"] == 1, report
    backups = ok(api, "GET", f"/api/backups?job_id={job['id']}")["backups"]
    (backup,) = [item for item in backups if item["name"] == result.archive_name]
    return backup  # type: ignore[no-any-return]


def read_back(engine: PodmanEngine, volume: str, directory: Path) -> Path:
    """The volume's files through the engine's archive endpoint, extracted by GNU tar."""
    client = engine.client
    helper = client.api.create_container(
        BASE_IMAGE,
        command=["true"],
        labels=engine.labels(),
        host_config=client.api.create_host_config(binds={volume: {"bind": "/v", "mode": "ro"}}),
    )["Id"]
    try:
        chunks, _stat = client.api.get_archive(helper, "/v/.")
        archive = directory.with_suffix(".tar")
        with archive.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
    finally:
        client.api.remove_container(helper, force=True)
    directory.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(archive), "-C", str(directory)], check=True)
    # Docker names the members `./...` under the folder given; podman `/...` or `v/...`.
    inner = directory / "v"
    return inner if inner.is_dir() and not (directory / "docs").exists() else directory


def helpers_left() -> list[str]:
    return podman("ps", "-aq", "--filter", "label=mackuper.helper").stdout.split()


@pytest.fixture
def volume_backup(
    api: ApiClient, runtime: Runtime, podman_engine: PodmanEngine, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """A volume of known files backed up by a volume job (tar.zst): the backup, the
    source volume, its tree and its listing."""
    tree = known_tree(tmp_path / "tree")
    volume = volume_with(podman_engine, tree)
    ok(api, "PUT", "/api/containers/engine", {"address": podman_engine.url})
    destination = local_destination(api, tmp_path / "backups")
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Volumes",
            "source_kind": "volume",
            "source": {"volumes": [volume]},
            "archive_format": "tar.zst",
            "destination_ids": [destination["id"]],
        },
    )["job"]
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
    assert run["status"] == "success", run["error"]
    (backup,) = ok(api, "GET", f"/api/backups?job_id={job['id']}")["backups"]
    yield {
        "backup": backup,
        "job": job,
        "destination": destination,
        "volume": volume,
        "tree": tree,
        "listing": listing(podman_engine, volume),
        "modes": listing(podman_engine, volume, owners=False),
    }


def restore_runs(api: ApiClient) -> list[int]:
    return [run["id"] for run in ok(api, "GET", "/api/runs")["runs"] if run["kind"] == "restore"]


def refused(
    api: ApiClient, body: dict[str, Any], status: int, words: str, field: Any = None
) -> None:
    """The request is refused with `status` saying `words`, and queues nothing."""
    before = restore_runs(api)
    answer = api.call("POST", "/api/restore/volume", body)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert words in answer.get_json()["error"], answer.get_json()
    if field is not None:
        assert answer.get_json()["field"] == field, answer.get_json()
    assert restore_runs(api) == before


def restored(api: ApiClient, runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    run = finished_run(api, runtime, ok(api, "POST", "/api/restore/volume", body)["run"])
    assert run["status"] == "success", (run["error"], run_log(api, run["id"]))
    return run


def test_volume_restores_into_a_new_volume_as_it_was(
    api: ApiClient,
    runtime: Runtime,
    podman_engine: PodmanEngine,
    volume_backup: dict[str, Any],
    tmp_path: Path,
) -> None:
    before = helpers_left()
    target = unique("mkp-restored")
    body = {
        "artifact_id": volume_backup["backup"]["id"],
        "target": {"source": volume_backup["volume"], "volume": target},
    }
    try:
        run = restored(api, runtime, body)
        files = read_back(podman_engine, target, tmp_path / "back")
        assert file_hashes(files) == file_hashes(volume_backup["tree"])
        assert len(file_hashes(files)) == 7
        assert os.readlink(files / "link-to-readme") == "docs/readme.txt"
        assert (files / "empty").is_dir() and not list((files / "empty").iterdir())
        # modes, types, link targets as in the source (podman's backup stored root as owner)
        assert listing(podman_engine, target, owners=False) == volume_backup["modes"]
        assert "|d|750|" in volume_backup["modes"]  # the volume's own folder's mode too
        assert any("into volume " + target in line for line in run_log(api, run["id"]))
        assert helpers_left() == before  # the helper container is gone again
        # a new volume that exists now is refused
        refused(api, body, 422, "already exists", "target.volume")
    finally:
        podman("volume", "rm", "-f", target, check=False)


def test_owners_in_the_archive_come_back_in_the_volume(
    api: ApiClient,
    runtime: Runtime,
    podman_engine: PodmanEngine,
    volume_backup: dict[str, Any],
    tmp_path: Path,
) -> None:
    owned = owned_backup(
        api,
        volume_backup["job"],
        volume_backup["destination"],
        volume_backup["tree"],
        volume_backup["volume"],
    )
    target = unique("mkp-owned")
    body = {
        "artifact_id": owned["id"],
        "target": {"source": volume_backup["volume"], "volume": target},
    }
    try:
        restored(api, runtime, body)
        files = read_back(podman_engine, target, tmp_path / "back")
        assert file_hashes(files) == file_hashes(volume_backup["tree"])
        # owners, modes, link targets and the hard link's second name, as in the source
        assert listing(podman_engine, target) == volume_backup["listing"]
        assert f"docs/readme.txt|f|{OWNER[0]}|{OWNER[1]}|640|" in volume_backup["listing"]
        inode = podman(
            "run", "--rm", "-v", f"{target}:/v:ro", BASE_IMAGE,
            "stat", "-c", "%i %h", "/v/docs/readme.txt", "/v/readme-hardlink.txt",
        ).stdout.splitlines()  # fmt: skip
        assert inode[0] == inode[1] and inode[0].endswith(" 2")  # one file, two names
    finally:
        podman("volume", "rm", "-f", target, check=False)


def test_restore_into_a_stopped_containers_volume_replaces_only_when_confirmed(
    api: ApiClient,
    runtime: Runtime,
    podman_engine: PodmanEngine,
    volume_backup: dict[str, Any],
    tmp_path: Path,
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "kept.txt").write_text("not in the backup\n")
    (old / "docs").mkdir()
    (old / "docs" / "readme.txt").write_text("an older readme\n")
    existing = volume_with(podman_engine, old)
    user = unique("mkp-stopped")
    run_container(
        podman_engine,
        BASE_IMAGE,
        ["true"],
        name=user,
        labels=podman_engine.labels(),
        volumes={existing: {"bind": "/data", "mode": "rw"}},
    )  # ran and exited: stopped
    backup_id = volume_backup["backup"]["id"]
    check = ok(
        api,
        "POST",
        "/api/restore/volume/check",
        {"artifact_id": backup_id, "source": volume_backup["volume"], "volume": existing},
    )
    assert check["exists"] and not check["empty"] and check["running"] == []
    assert check["containers"] == [{"name": user, "status": "exited"}]
    assert check["overwritten"] == ["docs"]
    assert set(check["writes"]) >= {"docs", "big.bin", "empty", "Ünïcödé 文件"}

    body: dict[str, Any] = {
        "artifact_id": backup_id,
        "target": {"source": volume_backup["volume"], "volume": existing, "create": False},
    }
    refused(api, body, 422, "is not empty", "target.replace")
    body["target"].update(replace=True, confirm="something else")
    refused(api, body, 422, f"Type {existing}", "target.confirm")
    body["target"]["confirm"] = existing
    restored(api, runtime, body)

    files = read_back(podman_engine, existing, tmp_path / "back")
    expected = {**file_hashes(volume_backup["tree"]), **file_hashes(old)}
    expected["docs/readme.txt"] = file_hashes(volume_backup["tree"])["docs/readme.txt"]
    assert file_hashes(files) == expected  # the backup's files replaced, kept.txt stays
    entries = set(listing(podman_engine, existing, owners=False))
    assert set(volume_backup["modes"]) <= entries
    assert list(entries - set(volume_backup["modes"])) == ["kept.txt|f|644|"]


def test_running_containers_volume_is_refused_and_left_as_it_was(
    api: ApiClient,
    runtime: Runtime,
    podman_engine: PodmanEngine,
    volume_backup: dict[str, Any],
    tmp_path: Path,
) -> None:
    busy = unique("mkp-busy")
    podman_engine.client.volumes.create(busy, labels=podman_engine.labels())
    runner = unique("mkp-running")
    run_container(
        podman_engine,
        BASE_IMAGE,
        COMMAND,
        name=runner,
        detach=True,
        labels=podman_engine.labels(),
        volumes={busy: {"bind": "/data", "mode": "rw"}},
    )
    deadline = time.monotonic() + 60
    while podman_engine.client.api.inspect_container(runner)["State"]["Status"] != "running":
        assert time.monotonic() < deadline, "the container did not start"
        time.sleep(0.1)
    before = listing(podman_engine, busy)
    body = {
        "artifact_id": volume_backup["backup"]["id"],
        "target": {
            "source": volume_backup["volume"],
            "volume": busy,
            "create": False,
            "replace": True,
            "confirm": busy,
        },
    }
    refused(api, body, 409, f"in use by running container(s) {runner}: stop them first")
    check = ok(
        api,
        "POST",
        "/api/restore/volume/check",
        {"artifact_id": body["artifact_id"], "source": volume_backup["volume"], "volume": busy},
    )
    assert check["running"] == [runner]
    assert listing(podman_engine, busy) == before == ["|d|0|0|755|"]  # empty as it was


def test_bad_names_and_missing_volumes_are_a_clear_4xx(
    api: ApiClient, podman_engine: PodmanEngine, volume_backup: dict[str, Any]
) -> None:
    source = volume_backup["volume"]
    backup_id = volume_backup["backup"]["id"]

    def body(volume: str, **more: Any) -> dict[str, Any]:
        return {"artifact_id": backup_id, "target": {"source": source, "volume": volume, **more}}

    refused(api, body("../etc"), 422, "is not a volume name", "target.volume")
    refused(api, body("-x"), 422, "is not a volume name", "target.volume")
    refused(
        api,
        body("mkp-no-such-volume", create=False),
        422,
        "no volume mkp-no-such-volume",
        "target.volume",
    )
    wrong = {"artifact_id": backup_id, "target": {"source": "mkp-other", "volume": "mkp-new-x"}}
    refused(api, wrong, 422, f"holds no volume mkp-other (it holds {source})", "target.source")
    outside = {**body(unique("mkp-new")), "paths": ["etc/passwd"]}
    refused(api, outside, 422, "is not in volume", "paths")
    missing = {**body(unique("mkp-new")), "artifact_id": 999_999}
    refused(api, missing, 404, "No such stored backup")
    assert podman("volume", "exists", "mkp-new-x", check=False).returncode == 1

    ok(api, "PUT", "/api/containers/engine", {"address": "/tmp/mkp-no-engine.sock"})
    refused(api, body(unique("mkp-new")), 409, "no socket at /tmp/mkp-no-engine.sock")
    asked = {"artifact_id": backup_id, "source": source, "volume": "mkp-any"}
    down = api.call("POST", "/api/restore/volume/check", asked)
    assert down.status_code == 409 and "no socket at" in down.get_json()["error"]


def test_selected_paths_restore_alone_and_cli_restores_into_a_new_volume(
    api: ApiClient,
    runtime: Runtime,
    podman_engine: PodmanEngine,
    volume_backup: dict[str, Any],
    data_dir: Path,
    tmp_path: Path,
) -> None:
    source = volume_backup["volume"]
    tree = volume_backup["tree"]
    chosen, by_cli = unique("mkp-chosen"), unique("mkp-cli")
    try:
        body = {
            "artifact_id": volume_backup["backup"]["id"],
            "paths": [f"volumes/{source}/docs", f"volumes/{source}/Ünïcödé 文件/run.sh"],
            "target": {"source": source, "volume": chosen},
        }
        restored(api, runtime, body)
        files = read_back(podman_engine, chosen, tmp_path / "chosen")
        wanted = {
            path: digest
            for path, digest in file_hashes(tree).items()
            if path.startswith("docs/") or path == "Ünïcödé 文件/run.sh"
        }
        assert file_hashes(files) == wanted and len(wanted) == 3

        cli = _mackuper(
            data_dir,
            "restore-volume",
            str(volume_backup["backup"]["id"]),
            "--volume",
            source,
            "--into",
            by_cli,
        )
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert listing(podman_engine, by_cli, owners=False) == volume_backup["modes"]
        again = _mackuper(
            data_dir, "restore-volume", str(volume_backup["backup"]["id"]),
            "--volume", source, "--into", by_cli, "--existing",
        )  # fmt: skip
        assert again.returncode == 2 and f"volume {by_cli} is not empty" in again.stdout
    finally:
        podman("volume", "rm", "-f", chosen, by_cli, check=False)


def test_a_failed_restore_removes_the_volume_it_made(
    api: ApiClient,
    runtime: Runtime,
    podman_engine: PodmanEngine,
    volume_backup: dict[str, Any],
    tmp_path: Path,
) -> None:
    (archive,) = (tmp_path / "backups").rglob("*.tar.zst")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])  # cut in the middle of big.bin
    target = unique("mkp-cut")
    before = helpers_left()
    body = {
        "artifact_id": volume_backup["backup"]["id"],
        "target": {"source": volume_backup["volume"], "volume": target},
    }
    run = finished_run(api, runtime, ok(api, "POST", "/api/restore/volume", body)["run"])
    assert run["status"] == "failed"
    assert "truncated" in (run["error"] or ""), run["error"]
    assert podman("volume", "exists", target, check=False).returncode == 1
    assert helpers_left() == before


def test_an_encrypted_volume_backup_restores_with_its_key_and_refuses_without(
    api: ApiClient, runtime: Runtime, podman_engine: PodmanEngine, tmp_path: Path
) -> None:
    tree = make_small_tree(tmp_path / "tree")
    volume = volume_with(podman_engine, tree)
    identity, recipient = generate_identity()
    ok(api, "PUT", "/api/containers/engine", {"address": podman_engine.url})
    destination = local_destination(api, tmp_path / "backups")
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Sealed volumes",
            "source_kind": "volume",
            "source": {"volumes": [volume]},
            "archive_format": "tar.xz",
            "destination_ids": [destination["id"]],
            "encryption": {"mode": "recipients", "recipients": [recipient]},
        },
    )["job"]
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
    assert run["status"] == "success", run["error"]
    (backup,) = ok(api, "GET", f"/api/backups?job_id={job['id']}")["backups"]
    assert backup["key"].endswith(".tar.xz.age")
    target = unique("mkp-sealed")
    body: dict[str, Any] = {
        "artifact_id": backup["id"],
        "target": {"source": volume, "volume": target},
    }
    try:
        refused(api, body, 422, "give the private key or passphrase", "decryption")
        asked = {"artifact_id": backup["id"], "source": volume, "volume": target}
        unopened = api.call("POST", "/api/restore/volume/check", asked)
        assert unopened.status_code == 422 and unopened.get_json()["field"] == "decryption"
        opened = ok(
            api,
            "POST",
            "/api/restore/volume/check",
            {**asked, "decryption": {"identity": identity}},
        )
        assert not opened["exists"] and "docs" in opened["writes"]
        other, _ = generate_identity()
        refused(
            api, {**body, "decryption": {"identity": other}}, 422, "does not open", "decryption"
        )
        run = restored(api, runtime, {**body, "decryption": {"identity": identity}})
        assert identity not in str(run) + " ".join(run_log(api, run["id"]))
        files = read_back(podman_engine, target, tmp_path / "back")
        assert file_hashes(files) == file_hashes(tree)
    finally:
        podman("volume", "rm", "-f", target, check=False)


def test_a_cancel_during_the_upload_removes_the_volume_it_made(
    runtime: Runtime, podman_engine: PodmanEngine, volume_backup: dict[str, Any]
) -> None:
    """A cancel arrives from the restore's progress report after the first member, in
    the middle of the engine's upload (a run checks for one before it starts, so the
    run-level path cannot reach this point deterministically): it is raised as it is,
    and the volume made for the restore and the helper container are gone."""
    target = unique("mkp-cancelled")
    before = helpers_left()
    with runtime.sessions() as session:
        artifact = session.get_one(Artifact, volume_backup["backup"]["id"])
        archive = stored_archive(runtime, session, artifact, {})
    seen: list[str] = []

    def on_member(report: VolumeReport, name: str) -> None:
        seen.append(name)
        raise Cancelled("cancelled by a user")

    source = volume_backup["volume"]
    volume = VolumeTarget(podman_engine.url, target)
    try:
        with open_members(archive) as members:
            stream = VolumeStream(members, source, [("volumes", source)], print_log, on_member)
            with pytest.raises(Cancelled):
                restore_volume(volume, True, stream)
    finally:
        volume.close()
    assert seen == ["."]  # the volume's own folder was sent, then the cancel came
    assert podman("volume", "exists", target, check=False).returncode == 1
    assert helpers_left() == before


def print_log(level: str, message: str) -> None:
    print(level, message)
