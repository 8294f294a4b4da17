"""One job, three kinds of destination: S3, SFTP and an rclone WebDAV remote.

`mackuper serve` backs the job up once to all three; each archive is opened with tar
straight from its storage, restored and verified through Mackuper from each, and the
next run's retention deletes the first run's archives from each.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import BrowserClient, running_mackuper, s3_destination_payload
from tests.servers.rclone_remotes import RcloneRemote
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name
from tests.servers.sshd import SSHServer
from tests.trees import file_hashes

pytestmark = pytest.mark.e2e


def _source(root: Path) -> Path:
    source = root / "source"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "report.txt").write_text("quarterly numbers\n" * 500)
    (source / "photo.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (source / "empty").write_bytes(b"")
    return source


def test_one_job_backs_up_restores_verifies_and_prunes_at_s3_sftp_and_rclone_webdav(
    tmp_path: Path, moto_s3: S3Server, sshd: SSHServer, rclone_webdav: RcloneRemote
) -> None:
    source = _source(tmp_path)
    bucket = moto_s3.make_bucket(unique_bucket_name("kinds"))
    s3 = moto_s3.client()
    user = sshd.users["password"]
    sftp_root = sshd.make_remote_tree(user.username, {}) / "backups"
    webdav_root = rclone_webdav.data_dir / "kinds-e2e"
    options, secret_options = rclone_webdav.settings()

    def stored_bytes(kind: str, key: str) -> bytes | None:
        """The object at `key` read straight from its storage, or None when it is gone."""
        if kind == "s3":
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
            if key not in [item["Key"] for item in listed]:
                return None
            body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body
        path = (sftp_root if kind == "sftp" else webdav_root) / key
        return path.read_bytes() if path.exists() else None

    try:
        with running_mackuper(tmp_path / "data") as mackuper:
            browser = BrowserClient(mackuper.url)
            s3_row = browser.complete_setup(s3_destination_payload(moto_s3, bucket, "S3"))
            login = {
                "host": sshd.host,
                "port": sshd.port,
                "username": user.username,
                "auth": "password",
                "password": user.password,
            }
            shown = browser.ok("POST", "/api/ssh/test", {"source": login})
            assert shown["fingerprint"] == sshd.host_key_fingerprint
            sftp_body = {"name": "NAS", "kind": "sftp", "path": str(sftp_root), **login}
            sftp_row = browser.ok(
                "POST", "/api/destinations", {**sftp_body, "host_key": shown["host_key"]}
            )["destination"]
            webdav_body = {
                "name": "WebDAV",
                "kind": "rclone",
                "remote_type": "webdav",
                "options": options,
                "secret_options": "\n".join(f"{k} = {v}" for k, v in secret_options.items()),
                "path": "kinds-e2e",
            }
            webdav_row = browser.ok("POST", "/api/destinations", webdav_body)["destination"]
            kinds = {s3_row["id"]: "s3", sftp_row["id"]: "sftp", webdav_row["id"]: "webdav"}

            job = browser.create_job(
                "Everywhere",
                source,
                s3_row["id"],
                archive_format="tar.gz",
                destination_ids=list(kinds),
                retention={"keep_last": 1},
            )
            first = browser.wait_run(browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
            assert first["status"] == "success", first
            artifacts: list[dict[str, Any]] = first["artifacts"]
            assert {kinds[item["destination_id"]] for item in artifacts} == {
                "s3",
                "sftp",
                "webdav",
            }

            for artifact in artifacts:
                kind = kinds[artifact["destination_id"]]
                archive = stored_bytes(kind, artifact["key"])
                assert archive is not None, kind
                assert stored_bytes(kind, artifact["key"] + ".manifest.json") is not None, kind
                opened = tmp_path / f"tar-{kind}"
                opened.mkdir()
                (tmp_path / f"{kind}.tar.gz").write_bytes(archive)
                subprocess.run(
                    ["tar", "-xzf", str(tmp_path / f"{kind}.tar.gz"), "-C", str(opened)],
                    check=True,
                )
                assert file_hashes(opened / str(source).lstrip("/")) == file_hashes(source), kind

                target = tmp_path / f"restored-{kind}"
                restore = browser.ok(
                    "POST",
                    "/api/restore",
                    {
                        "artifact_id": artifact["id"],
                        "target": {"kind": "local", "path": str(target)},
                    },
                )["run"]
                restored = browser.wait_run(restore["id"])
                assert restored["status"] == "success", (kind, restored)
                assert file_hashes(target / str(source).lstrip("/")) == file_hashes(source), kind

                verify = browser.ok("POST", "/api/verify", {"artifact_id": artifact["id"]})["run"]
                verified = browser.wait_run(verify["id"])
                assert verified["status"] == "success", (kind, verified)

            second = browser.wait_run(browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
            assert second["status"] == "success", second
            # The run is recorded first, then its retention runs: wait for it to settle.
            deadline = time.monotonic() + 60
            while True:
                run = browser.ok("GET", f"/api/runs/{first['id']}")["run"]
                states = {item["state"] for item in run["artifacts"]}
                if states == {"deleted"} or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert states == {"deleted"}

        for artifact in artifacts:
            kind = kinds[artifact["destination_id"]]
            assert stored_bytes(kind, artifact["key"]) is None, kind
            assert stored_bytes(kind, artifact["key"] + ".manifest.json") is None, kind
        for artifact in second["artifacts"]:
            kind = kinds[artifact["destination_id"]]
            assert stored_bytes(kind, artifact["key"]) is not None, kind
    finally:
        remove_bucket(moto_s3, bucket)
