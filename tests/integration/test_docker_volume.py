"""Named volumes backed up through the engine's archive API (issue 18, Done-when 1).

A volume filled with known files (nested folders, an empty folder, a 3 MiB file, a
UTF-8 name with spaces, a symbolic link, a 0640 mode) is backed up by a VolumeSource
through podman's Docker-compatible API, and GNU tar extracts the archive to the same
SHA-256 hashes, the link and the mode. Nothing is mounted into the test process.
(podman 4.3's archive endpoint reports every file as root's; Docker's keeps owners,
which the entries carry through.)
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.base import SourceError
from mackuper.sources.volume import VolumeSource
from tests.integration.docker_support import volume_with
from tests.integration.engine_support import RecordingHooks
from tests.servers.podman import PodmanEngine, podman
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
