"""Encrypted backups through the real pipeline: `.age` names, `age -d | tar` restores the tree,
and the manifest shows recipient types while its file list is sealed."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.base import Destination
from mackuper.destinations.local import LocalDestination
from mackuper.destinations.s3 import S3Destination
from mackuper.pipeline.age import X25519Identity, parse_recipient
from mackuper.pipeline.encrypt import unseal_manifest
from mackuper.pipeline.run import BackupPlan, BackupResult, run_backup
from mackuper.sources.local import LocalSource
from tests.integration.engine_support import RecordingHooks
from tests.servers.s3 import S3Bucket
from tests.trees import blake3_bytes, file_hashes, make_small_tree

pytestmark = pytest.mark.integration


def encrypted_backup(
    source: Path, destination: Destination, recipients: list[str], archive_format: str
) -> tuple[BackupResult, RecordingHooks, str]:
    hooks = RecordingHooks()
    plan = BackupPlan(
        job_id=3,
        job_slug="secret-docs",
        job_name="Secret docs",
        run_id=9,
        archive_format=archive_format,
        compression_level=None,
        source=LocalSource([str(source)]),
        destinations={1: destination},
        started_at=datetime.now(UTC),
        encryption=[parse_recipient(text) for text in recipients],
    )
    result = run_backup(plan, hooks)
    (artifact,) = hooks.artifacts.values()
    assert artifact["state"] == "stored"
    return result, hooks, str(artifact["key"])


def age_decrypt_and_untar(archive: Path, identity_file: Path, tar_flag: str, target: Path) -> None:
    target.mkdir()
    with subprocess.Popen(
        ["age", "-d", "-i", str(identity_file), str(archive)], stdout=subprocess.PIPE
    ) as age:
        subprocess.run(["tar", tar_flag, "-x", "-C", str(target)], stdin=age.stdout, check=True)
    assert age.returncode == 0


def test_encrypted_local_backup_opens_with_age_and_tar_and_seals_its_file_list(
    tmp_path: Path,
) -> None:
    source = make_small_tree(tmp_path / "source")
    identity = X25519Identity.generate()
    identity_file = tmp_path / "key.txt"
    identity_file.write_text(str(identity) + "\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ed")])
    ssh_public = (tmp_path / "ed.pub").read_text().strip()

    result, hooks, key = encrypted_backup(
        source,
        LocalDestination(str(tmp_path / "backups")),
        [str(identity.recipient()), ssh_public],
        "tar.zst",
    )

    assert key.endswith(".tar.zst.age")
    archive = tmp_path / "backups" / key
    assert archive.read_bytes().startswith(b"age-encryption.org/v1\n")
    age_decrypt_and_untar(archive, identity_file, "--zstd", tmp_path / "out")
    restored = tmp_path / "out" / str(source).lstrip("/")
    assert file_hashes(restored) == file_hashes(source)
    assert (restored / "link-to-readme").readlink() == Path("docs/readme.txt")
    ssh_opened = subprocess.run(
        ["age", "-d", "-i", str(tmp_path / "ed"), str(archive)], capture_output=True
    )
    assert ssh_opened.returncode == 0
    assert len(ssh_opened.stdout) > 3 * 1024 * 1024

    manifest_text = (archive.parent / (archive.name + ".manifest.json")).read_text()
    manifest = json.loads(manifest_text)
    assert manifest["encryption"]["recipient_types"] == ["X25519", "ssh-ed25519"]
    assert ("blake3", manifest["archive"]["blake3"]) == result.archive_hash
    assert manifest["file_count"] == result.files
    assert "files" not in manifest and "source" not in manifest
    for private in ("readme.txt", "data.bin", str(source), str(identity.recipient())):
        assert private not in manifest_text
    sealed = subprocess.run(
        ["age", "-d", "-i", str(identity_file)],
        input=manifest["sealed_age"].encode(),
        capture_output=True,
        check=True,
    )
    listed = {item["path"] for item in json.loads(sealed.stdout)["files"]}
    assert any(path.endswith("docs/readme.txt") for path in listed)
    whole = unseal_manifest(manifest, identities=[str(identity)])
    assert {item["path"] for item in whole["files"]} == listed
    assert str(source) in str(whole["source"])


def test_encrypted_backup_streams_to_s3_and_age_opens_the_object(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    server, bucket = s3_bucket
    source = make_small_tree(tmp_path / "source")
    identity = X25519Identity.generate()
    (tmp_path / "key.txt").write_text(str(identity) + "\n")
    destination = S3Destination(
        bucket=bucket,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        region=server.region,
        endpoint_url=server.endpoint_url,
        path_style=True,
    )

    result, _, key = encrypted_backup(source, destination, [str(identity.recipient())], "tar.gz")

    assert key.endswith(".tar.gz.age")
    body = server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert ("blake3", blake3_bytes(body)) == result.archive_hash
    (tmp_path / "archive.age").write_bytes(body)
    age_decrypt_and_untar(tmp_path / "archive.age", tmp_path / "key.txt", "-z", tmp_path / "out")
    assert file_hashes(tmp_path / "out" / str(source).lstrip("/")) == file_hashes(source)
