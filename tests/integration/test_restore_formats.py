"""Done when 1: every format backs up, restores through the API and matches the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import (
    backed_up,
    finished_run,
    local_destination,
    ok,
    restore,
    run_log,
)
from tests.servers.s3 import S3Bucket
from tests.servers.sshd import SSHServer
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration

FORMATS = ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip"]


def _inside(target: Path, source: Path) -> Path:
    return target / str(source).lstrip("/")


@pytest.mark.parametrize("archive_format", FORMATS)
def test_restore_whole_backup_and_a_selected_folder_match_the_source(
    tmp_path: Path, api: ApiClient, runtime: Runtime, archive_format: str
) -> None:
    source = make_small_tree(tmp_path / "source")
    destination = local_destination(api, tmp_path / "storage")
    backup = backed_up(api, runtime, source, destination["id"], archive_format)
    assert backup["format"] == archive_format

    everything = tmp_path / "restored-all"
    run = restore(api, runtime, backup["id"], {"kind": "local", "path": str(everything)})
    assert run["status"] == "success", run["error"]
    restored = _inside(everything, source)
    assert file_hashes(restored) == file_hashes(source)
    assert (restored / "empty").is_dir()
    assert (restored / "link-to-readme").readlink() == Path("docs/readme.txt")

    subset = tmp_path / "restored-docs"
    docs = str(source / "docs").lstrip("/")
    run = restore(api, runtime, backup["id"], {"kind": "local", "path": str(subset)}, paths=[docs])
    assert run["status"] == "success", run["error"]
    assert file_hashes(_inside(subset, source)) == {
        path: digest for path, digest in file_hashes(source).items() if path.startswith("docs/")
    }


def test_restore_from_s3_reads_zip_by_ranges_and_tar_zst_as_a_stream(
    tmp_path: Path, api: ApiClient, runtime: Runtime, s3_bucket: S3Bucket
) -> None:
    server, bucket = s3_bucket
    source = make_small_tree(tmp_path / "source")
    destination = ok(
        api,
        "POST",
        "/api/destinations",
        {
            "name": "Bucket",
            "kind": "s3",
            "bucket": bucket,
            "region": server.region,
            "endpoint_url": server.endpoint_url,
            "path_style": True,
            "access_key_id": server.access_key,
            "secret_access_key": server.secret_key,
        },
    )["destination"]
    for archive_format in ("zip", "tar.zst"):
        backup = backed_up(
            api, runtime, source, destination["id"], archive_format, f"Docs {archive_format}"
        )
        target = tmp_path / f"restored-{archive_format}"
        picked = str(source / "docs" / "deep").lstrip("/")
        run = restore(
            api, runtime, backup["id"], {"kind": "local", "path": str(target)}, paths=[picked]
        )
        assert run["status"] == "success", run["error"]
        restored = file_hashes(_inside(target, source))
        assert restored == {
            path: digest
            for path, digest in file_hashes(source).items()
            if path.startswith("docs/deep/")
        }


def test_restore_to_an_ssh_host_writes_the_files_over_sftp(
    tmp_path: Path, api: ApiClient, runtime: Runtime, sshd: SSHServer
) -> None:
    source = make_small_tree(tmp_path / "source")
    destination = local_destination(api, tmp_path / "storage")
    backup = backed_up(api, runtime, source, destination["id"], "tar.gz")
    user = sshd.users["password"]
    remote = sshd.make_remote_tree(user.username, {})
    target = {
        "kind": "ssh",
        "host": sshd.host,
        "port": sshd.port,
        "username": user.username,
        "password": user.password,
        "host_key_fingerprint": sshd.host_key_fingerprint,
        "path": str(remote / "restored"),
    }
    run = restore(api, runtime, backup["id"], target)
    assert run["status"] == "success", run["error"]
    restored = _inside(remote / "restored", source)
    assert file_hashes(restored) == file_hashes(source)
    assert (restored / "link-to-readme").readlink() == Path("docs/readme.txt")
    assert user.password not in str(ok(api, "GET", f"/api/runs/{run['id']}"))
    assert not any(user.password in line for line in run_log(api, run["id"]))

    wrong_key = {**target, "host_key_fingerprint": "SHA256:" + "A" * 43}
    run = restore(api, runtime, backup["id"], wrong_key)
    assert run["status"] == "failed"
    assert "host key" in run["error"] and "nothing was sent" in run["error"]


def test_restore_to_the_original_ssh_host_uses_the_jobs_pinned_key_and_login(
    tmp_path: Path, api: ApiClient, runtime: Runtime, sshd: SSHServer
) -> None:
    user = sshd.users["key"]
    tree = sshd.make_remote_tree(user.username, {"docs/a.txt": "alpha\n", "b.bin": b"\x01" * 9000})
    destination = local_destination(api, tmp_path / "storage")
    job = ok(
        api,
        "POST",
        "/api/jobs",
        {
            "name": "Remote docs",
            "source_kind": "ssh",
            "source": {
                "host": sshd.host,
                "port": sshd.port,
                "username": user.username,
                "auth": "key",
                "private_key": user.private_key,
                "passphrase": "",
                "host_key": sshd.host_public_key,
                "paths": [str(tree)],
                "excludes": [],
            },
            "archive_format": "tar.xz",
            "schedule": "",
            "destination_ids": [destination["id"]],
        },
    )["job"]
    backup_run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])
    assert backup_run["status"] == "success", backup_run["error"]
    (backup,) = ok(api, "GET", f"/api/backups?job_id={job['id']}")["backups"]
    back_home = sshd.make_remote_tree(user.username, {})

    run = restore(
        api,
        runtime,
        backup["id"],
        {"kind": "ssh", "same_as_source": True, "path": str(back_home)},
    )

    assert run["status"] == "success", run["error"]
    assert file_hashes(back_home / str(tree).lstrip("/")) == file_hashes(tree)
