"""S3 requests refused with 503 SlowDown are tried again on their schedule (issue 24,
items 8 and 11), against moto behind a front that refuses chosen requests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from mackuper.core.outage import retry_delay
from mackuper.destinations.s3 import S3Destination
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.local import LocalSource
from tests.integration.engine_support import RecordingHooks, describe_tree, extract, sha256_bytes
from tests.servers.faults import endpoint_address
from tests.servers.http_front import HttpFront, http_front
from tests.servers.s3 import S3Server, remove_bucket, unique_bucket_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MIB = 1024 * 1024


def request_kind(method: str, path: str) -> str:
    """Which S3 request this is: create, part, complete, abort, put, head, get, list."""
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    if method == "POST":
        return "create" if "uploads" in query else "complete"
    if method == "PUT":
        return "part" if "partNumber" in query else "put"
    if method == "DELETE":
        return "abort" if "uploadId" in query else "delete"
    if method == "HEAD":
        return "head"
    return "list" if "list-type" in query or urlsplit(path).path.count("/") <= 1 else "get"


@pytest.fixture
def bucket(moto_s3: S3Server) -> Iterator[str]:
    name = moto_s3.make_bucket(unique_bucket_name("retry"))
    yield name
    remove_bucket(moto_s3, name)


def _destination(server: S3Server, bucket: str, front: HttpFront) -> S3Destination:
    return S3Destination(
        bucket=bucket,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        region=server.region,
        endpoint_url=front.url,
        path_style=True,
        part_size=5 * MIB,
        parts_in_flight=1,
        retry_seconds=60,
    )


def _refuse_first(times: int, wanted: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
    refused = 0

    def refuse(method: str, path: str) -> bool:
        nonlocal refused
        if wanted(method, path) and refused < times:
            refused += 1
            return True
        return False

    return refuse


def test_a_part_refused_three_times_is_retried_after_1_2_and_4_seconds(
    moto_s3: S3Server, bucket: str
) -> None:
    def first_part(method: str, path: str) -> bool:
        return request_kind(method, path) == "part" and "partNumber=1" in path

    data = os.urandom(6 * MIB)  # two parts: 5 MiB and 1 MiB
    with http_front(endpoint_address(moto_s3.endpoint_url), _refuse_first(3, first_part)) as front:
        writer = _destination(moto_s3, bucket, front).open_writer("job/retried.tar", {"r": "1"})
        writer.write(data)
        writer.commit()

    tries = [seen for seen in front.seen if first_part(seen.method, seen.path)]
    assert [seen.refused for seen in tries] == [True, True, True, False]
    gaps = [later.at - earlier.at for earlier, later in zip(tries, tries[1:], strict=False)]
    expected = [retry_delay(attempt) for attempt in (1, 2, 3)]
    assert expected == [1.0, 2.0, 4.0]
    for gap, delay in zip(gaps, expected, strict=True):
        assert delay <= gap < delay + 0.75, (gaps, expected)
    print(f"part 1 retried after {', '.join(f'{gap:.2f}' for gap in gaps)} s")  # noqa: T201
    stored = moto_s3.client().get_object(Bucket=bucket, Key="job/retried.tar")["Body"].read()  # type: ignore[attr-defined]
    assert sha256_bytes(stored) == sha256_bytes(data)
    uploads = moto_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])  # type: ignore[attr-defined]
    assert uploads == []


def test_every_request_of_a_backup_is_retried_when_s3_answers_503(
    tmp_path: Path, moto_s3: S3Server, bucket: str
) -> None:
    """create, upload part, complete, put (the manifest) and head (the look before
    publishing): each is refused once, and the backup still stores the source."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(7 * MIB))
    (source / "small.txt").write_text("small\n")
    first_of: set[str] = set()

    def refuse(method: str, path: str) -> bool:
        kind = request_kind(method, path)
        if kind in first_of:
            return False
        first_of.add(kind)
        return True

    with http_front(endpoint_address(moto_s3.endpoint_url), refuse) as front:
        plan = BackupPlan(
            job_id=1,
            job_slug="retried",
            job_name="Retried",
            run_id=1,
            archive_format="tar",
            compression_level=None,
            source=LocalSource([str(source)]),
            destinations={1: _destination(moto_s3, bucket, front)},
            started_at=datetime.now(UTC),
        )
        result = run_backup(plan, RecordingHooks())

    assert result.failed_destinations == {} and result.problems == []
    outcomes: dict[str, list[bool]] = {}
    for seen in front.seen:
        outcomes.setdefault(request_kind(seen.method, seen.path), []).append(seen.refused)
    for kind in ("create", "part", "complete", "put", "head"):
        assert outcomes[kind][:2] == [True, False], (kind, outcomes)
    listed = moto_s3.client().list_objects_v2(Bucket=bucket)["Contents"]  # type: ignore[attr-defined]
    archive_key = next(item["Key"] for item in listed if item["Key"].endswith(result.archive_name))
    archive = tmp_path / "archive.tar"
    body = moto_s3.client().get_object(Bucket=bucket, Key=archive_key)["Body"]  # type: ignore[attr-defined]
    archive.write_bytes(body.read())
    extract(archive, "tar", tmp_path / "out")
    assert describe_tree(tmp_path / "out" / str(source).lstrip("/")) == describe_tree(source)
    assert {item["Key"] for item in listed} == {archive_key, archive_key + ".manifest.json"}
