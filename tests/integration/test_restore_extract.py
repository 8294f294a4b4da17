"""Download one file or one folder out of a backup without reading the whole archive
first: zip by ranged reads of its central directory, tar by streaming to the member."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from mackuper.destinations.s3 import S3Destination
from mackuper.restore.archives import StoredArchive, open_members
from mackuper.restore.storage import RangedReader
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import backed_up, local_destination, ok
from tests.servers.s3 import S3Bucket
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration


def test_folder_and_file_come_out_of_a_tar_backup_as_streams(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source = make_small_tree(tmp_path / "source")
    destination = local_destination(api, tmp_path / "storage")
    backup = backed_up(api, runtime, source, destination["id"], "tar.bz2")
    docs = str(source / "docs").lstrip("/")

    folder = api.call("GET", f"/api/backups/{backup['id']}/extract?path={docs}")
    assert folder.status_code == 200
    assert folder.headers["Content-Type"] == "application/x-tar"
    assert "filename*=UTF-8''docs.tar" in folder.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(folder.get_data())) as archive:
        archive.extractall(tmp_path / "out", filter="data")
    assert file_hashes(tmp_path / "out" / "docs") == file_hashes(source / "docs")

    name = str(source / "name with spaces é.txt").lstrip("/")
    single = api.call("GET", f"/api/backups/{backup['id']}/extract?path={name}")
    assert single.status_code == 200
    assert single.headers["Content-Length"] == str(len(single.get_data()))
    assert single.get_data() == (source / "name with spaces é.txt").read_bytes()
    assert (
        "filename*=UTF-8''name%20with%20spaces%20%C3%A9.txt"
        in single.headers["Content-Disposition"]
    )
    missing = api.call("GET", f"/api/backups/{backup['id']}/extract?path=no/such/file")
    assert missing.status_code == 404 and "not in this backup" in missing.get_json()["error"]


def test_zip_member_out_of_s3_reads_a_small_part_of_the_object(
    tmp_path: Path, api: ApiClient, runtime: Runtime, s3_bucket: S3Bucket
) -> None:
    server, bucket = s3_bucket
    source = make_small_tree(tmp_path / "source")
    (source / "more.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    form = {
        "name": "Bucket",
        "kind": "s3",
        "bucket": bucket,
        "region": server.region,
        "endpoint_url": server.endpoint_url,
        "path_style": True,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
    }
    destination = ok(api, "POST", "/api/destinations", form)["destination"]
    backup = backed_up(api, runtime, source, destination["id"], "zip")
    readme = str(source / "docs" / "readme.txt").lstrip("/")

    response = api.call("GET", f"/api/backups/{backup['id']}/extract?path={readme}")
    assert response.get_data() == b"hello backup\n"

    s3 = S3Destination(
        bucket=bucket,
        region=server.region,
        endpoint_url=server.endpoint_url,
        path_style=True,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
    )
    reader = RangedReader(s3, backup["key"], backup["size"], block_size=64 * 1024)
    archive = StoredArchive(s3, backup["key"])
    with zipfile.ZipFile(io.BufferedReader(reader)) as opened:  # type: ignore[arg-type]
        data = opened.read(readme)
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(b"hello backup\n").hexdigest()
    assert reader.fetched < backup["size"] // 10
    with open_members(archive) as members:
        names = [member.name for member, _opener in members]
    assert readme in names
