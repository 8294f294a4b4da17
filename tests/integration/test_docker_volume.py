"""Named volumes backed up through the engine's archive API (issue 18, Done-when 1).

A volume filled with known files (nested folders, an empty folder, a 3 MiB file, a
UTF-8 name with spaces, a symbolic link, a 0640 mode) is backed up by a VolumeSource
through podman's Docker-compatible API, and GNU tar extracts the archive to the same
SHA-256 hashes, the link and the mode. Nothing is mounted into the test process.
(podman 4.3's archive endpoint reports every file as root's; Docker's keeps owners,
which the entries carry through.) A job's container paths (a folder and a file in a
stopped container's own layer) back up the same way, made through the API.
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.runtime import Runtime
from mackuper.sources.base import SourceError
from mackuper.sources.volume import VolumeSource
from tests.conftest import ApiClient
from tests.integration.docker_support import run_container, unique, volume_with
from tests.integration.engine_support import RecordingHooks
from tests.integration.restore_support import finished_run, local_destination, ok
from tests.servers.podman import BASE_IMAGE, PodmanEngine, podman
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration


def backup(source: VolumeSource, directory: Path, archive_format: str) -> RecordingHooks:
    hooks = RecordingHooks()
    plan = BackupPlan(
        job_id=1,
        job_slug="volumes",
        job_name="Volumes",
        run_id=1,
        archive_format=archive_format,
        compression_level=None,
        source=source,
        destinations={1: LocalDestination(str(directory))},
        started_at=datetime.now(UTC),
    )
    try:
        run_backup(plan, hooks)
    finally:
        source.close()
    return hooks


@pytest.mark.parametrize("archive_format", ["tar.zst", "tar"])
def test_volume_backs_up_through_the_engine_and_gnu_tar_extracts_identical_files(
    podman_engine: PodmanEngine, tmp_path: Path, archive_format: str
) -> None:
    tree = make_small_tree(tmp_path / "tree")
    (tree / "docs" / "readme.txt").chmod(0o640)
    volume = volume_with(podman_engine, tree)

    hooks = backup(VolumeSource(podman_engine.url, [volume]), tmp_path / "backups", archive_format)

    archive = next((tmp_path / "backups").rglob(f"*.{archive_format}"))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
    restored = out / "volumes" / volume
    assert file_hashes(restored) == file_hashes(tree)
    assert len(file_hashes(tree)) == 4
    assert os.readlink(restored / "link-to-readme") == "docs/readme.txt"
    assert (restored / "empty").is_dir()
    assert (restored / "docs" / "readme.txt").stat().st_mode & 0o777 == 0o640
    assert any(f"volume {volume}:" in message for _, message in hooks.logs)
    # the throwaway reading container is gone again (no container mounts the volume;
    # other tests and sessions may use the same engine, so not "no new container")
    assert podman("ps", "-aq", "--filter", f"volume={volume}").stdout.split() == []


def test_missing_volume_fails_the_backup_and_publishes_nothing(
    podman_engine: PodmanEngine, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="no-such-volume"):
        backup(VolumeSource(podman_engine.url, ["no-such-volume-mkp"]), tmp_path / "b", "tar")
    assert not list((tmp_path / "b").rglob("backup_*"))


def test_unreachable_engine_is_a_clear_source_error(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/nothing.sock"
    with pytest.raises(SourceError, match="no socket at"):
        backup(VolumeSource(url, ["data"]), tmp_path / "b", "tar")


def test_container_paths_back_up_from_the_container_itself_through_the_api(
    podman_engine: PodmanEngine, api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    """A folder and a file inside a stopped container's own file system (no volume)
    back up through the engine's archive endpoint, and GNU tar extracts them as they
    were under containers/<name>/<path>."""
    tree = make_small_tree(tmp_path / "tree")
    (tree / "docs" / "readme.txt").chmod(0o640)
    name = unique("mkp-app")
    run_container(
        podman_engine,
        BASE_IMAGE,
        ["sh", "-c", "mkdir -p /srv/app && cp -a /tree/. /srv/app/ && echo one > /srv/one.txt"],
        name=name,
        labels=podman_engine.labels(),
        volumes={str(tree): {"bind": "/tree", "mode": "ro"}},
    )  # ran and exited; its files are in its own layer
    ok(api, "PUT", "/api/containers/engine", {"address": podman_engine.url})
    destination = local_destination(api, tmp_path / "backups")
    body = {
        "name": "App files",
        "source_kind": "volume",
        "source": {"container_paths": f"{name}:/srv/app/\n{name}:/srv/one.txt"},
        "archive_format": "tar.gz",
        "destination_ids": [destination["id"]],
    }
    bad = api.call("POST", "/api/jobs", {**body, "source": {"container_paths": "app:srv"}})
    assert bad.status_code == 422 and "must be absolute" in bad.get_json()["error"]
    nothing = api.call("POST", "/api/jobs", {**body, "source": {}})
    assert nothing.status_code == 422
    assert "at least one volume (or container path)" in nothing.get_json()["error"]
    job = ok(api, "POST", "/api/jobs", body)["job"]
    assert job["source"]["container_paths"] == [f"{name}:/srv/app", f"{name}:/srv/one.txt"]
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
    assert run["status"] == "success", run["error"]

    (archive,) = (tmp_path / "backups").rglob("*.tar.gz")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
    restored = out / "containers" / name / "srv" / "app"
    assert file_hashes(restored) == file_hashes(tree)
    assert os.readlink(restored / "link-to-readme") == "docs/readme.txt"
    assert (restored / "empty").is_dir()
    assert (restored / "docs" / "readme.txt").stat().st_mode & 0o777 == 0o640
    assert (out / "containers" / name / "srv" / "one.txt").read_text() == "one\n"
    assert sorted(path.name for path in (out / "containers" / name / "srv").iterdir()) == [
        "app",
        "one.txt",
    ]

    missing = {**body, "name": "Gone", "source": {"container_paths": "mkp-no-such-container:/srv"}}
    gone = ok(api, "POST", "/api/jobs", missing)["job"]
    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{gone['id']}/run")["run"])
    assert run["status"] == "failed" and "mkp-no-such-container" in run["error"], run["error"]
