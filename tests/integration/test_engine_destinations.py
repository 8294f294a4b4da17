"""One pass over the source fans out to several S3 servers and a local directory."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mackuper.destinations.base import Destination
from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.runs.outcome import from_result
from mackuper.sources.base import Entry, Reporter
from mackuper.sources.local import LocalSource
from tests.integration.engine_support import RecordingHooks, extract
from tests.integration.storage_support import s3_destination
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name
from tests.trees import blake3_bytes, file_hashes, make_small_tree

pytestmark = pytest.mark.integration


class CountingSource(LocalSource):
    """A local source that counts walks and file opens, to prove one pass."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(paths)
        self.walks = 0
        self.opens: dict[str, int] = {}

    def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
        self.walks += 1
        for entry in super().iter_entries(reporter):
            if entry.open is not None:
                opener = entry.open

                def counted(name: str = entry.name, opener=opener):  # type: ignore[no-untyped-def]
                    self.opens[name] = self.opens.get(name, 0) + 1
                    return opener()

                entry.open = counted
            yield entry


@pytest.fixture
def two_buckets(moto_s3: S3Server, rclone_s3: S3Server) -> Iterator[list[tuple[S3Server, str]]]:
    pairs = [(server, server.make_bucket(unique_bucket_name())) for server in (moto_s3, rclone_s3)]
    yield pairs
    for server, bucket in pairs:
        remove_bucket(server, bucket)


def test_one_pass_lands_three_identical_archives_matching_the_manifest(
    tmp_path: Path, two_buckets: list[tuple[S3Server, str]]
) -> None:
    source_root = make_small_tree(tmp_path / "source")
    (source_root / "large.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    source = CountingSource([str(source_root)])
    destinations: dict[int, Destination] = {
        1: s3_destination(*two_buckets[0], parts_in_flight=2),
        2: s3_destination(*two_buckets[1], parts_in_flight=3),
        3: LocalDestination(str(tmp_path / "local")),
    }
    hooks = RecordingHooks()
    plan = BackupPlan(
        job_id=3,
        job_slug="fan-out",
        job_name="Fan out",
        run_id=11,
        archive_format="tar",
        compression_level=None,
        source=source,
        destinations=destinations,
        started_at=datetime.now(UTC),
    )
    result = run_backup(plan, hooks)

    assert from_result(result).status.value == "success"
    assert source.walks == 1
    assert set(source.opens.values()) == {1} and len(source.opens) == 5
    keys = {artifact["destination"]: artifact["key"] for artifact in hooks.artifacts.values()}
    assert all(artifact["state"] == "stored" for artifact in hooks.artifacts.values())
    bodies = []
    manifests = []
    for index, (server, bucket) in enumerate(two_buckets, start=1):
        client = server.client()
        bodies.append(client.get_object(Bucket=bucket, Key=keys[index])["Body"].read())
        manifest = client.get_object(Bucket=bucket, Key=keys[index] + ".manifest.json")
        manifests.append(json.loads(manifest["Body"].read()))
        head = client.head_object(Bucket=bucket, Key=keys[index])
        metadata = {name.lower(): value for name, value in head["Metadata"].items()}
        assert metadata["mackuper-run"] == "11"  # rclone capitalises metadata names
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    local_archive = tmp_path / "local" / keys[3]
    bodies.append(local_archive.read_bytes())
    manifests.append(json.loads(Path(str(local_archive) + ".manifest.json").read_text()))

    digests = {("blake3", blake3_bytes(body)) for body in bodies}
    assert digests == {result.archive_hash}
    assert {("blake3", manifest["archive"]["blake3"]) for manifest in manifests} == digests
    assert len(bodies[0]) > 2 * 5 * 1024 * 1024  # several multipart parts
    extract(local_archive, "tar", tmp_path / "out")
    assert file_hashes(tmp_path / "out" / str(source_root).lstrip("/")) == file_hashes(source_root)


def test_a_failed_destination_among_several_ends_warning_and_names_it(
    tmp_path: Path, moto_s3: S3Server
) -> None:
    source_root = make_small_tree(tmp_path / "source")
    bucket = moto_s3.make_bucket(unique_bucket_name())
    missing = unique_bucket_name("gone")
    destinations: dict[int, Destination] = {
        1: s3_destination(moto_s3, bucket),
        2: s3_destination(moto_s3, missing),
        3: LocalDestination(str(tmp_path / "local")),
    }
    hooks = RecordingHooks()
    try:
        plan = BackupPlan(
            job_id=3,
            job_slug="partly",
            job_name="Partly",
            run_id=12,
            archive_format="tar.gz",
            compression_level=None,
            source=LocalSource([str(source_root)]),
            destinations=destinations,
            started_at=datetime.now(UTC),
        )
        result = run_backup(plan, hooks)
        outcome = from_result(result)
        assert outcome.status.value == "warning"
        assert outcome.error is not None and missing in outcome.error
        states = {
            artifact["destination"]: artifact["state"] for artifact in hooks.artifacts.values()
        }
        assert states == {1: "stored", 2: "deleted", 3: "stored"}
        body = moto_s3.client().get_object(Bucket=bucket, Key=hooks.artifacts[1]["key"])["Body"]
        assert ("blake3", blake3_bytes(body.read())) == result.archive_hash
    finally:
        remove_bucket(moto_s3, bucket)
