"""Issue 19, item 2: a write key that cannot delete and a delete key used only to delete,
on a moto server that enforces IAM (server mode, `/moto-api/reset-auth` 0: from then on
every request is checked against the calling IAM user's policies, as AWS does).

Test connection writes with the write key, proves the bucket refuses its delete, and
deletes with the delete key; a write key that can delete fails the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from mackuper.destinations import registry
from tests.conftest import ApiClient
from tests.harness import s3_destination_payload
from tests.servers.s3 import S3Server, running_moto, unique_bucket_name

pytestmark = pytest.mark.integration

WRITE_ACTIONS = [
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:GetBucketObjectLockConfiguration",
    "s3:PutObject",
    "s3:GetObject",
    "s3:PutObjectRetention",
    "s3:GetObjectRetention",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
DELETE_ACTIONS = [
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetBucketVersioning",
    "s3:GetObject",
    "s3:GetObjectRetention",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
]


class Keys(dict[str, tuple[str, str]]):
    """User name -> (access key id, secret)."""


@pytest.fixture(scope="module")
def iam_s3() -> Iterator[tuple[S3Server, str, Keys]]:
    with running_moto() as server:
        bucket = unique_bucket_name("iam")
        server.client().create_bucket(Bucket=bucket)
        iam = boto3.client(
            "iam",
            endpoint_url=server.endpoint_url,
            region_name=server.region,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
        )
        keys = Keys()
        for name, actions in {
            "writer": WRITE_ACTIONS,
            "deleter": DELETE_ACTIONS,
            "everything": [*WRITE_ACTIONS, *DELETE_ACTIONS],
        }.items():
            iam.create_user(UserName=name)
            document = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": actions,
                        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    }
                ],
            }
            iam.put_user_policy(
                UserName=name, PolicyName="backups", PolicyDocument=json.dumps(document)
            )
            key = iam.create_access_key(UserName=name)["AccessKey"]
            keys[name] = (key["AccessKeyId"], key["SecretAccessKey"])
        answer = requests.post(f"{server.endpoint_url}/moto-api/reset-auth", data=b"0", timeout=10)
        assert answer.json()["status"] == "ok"
        yield server, bucket, keys


def payload(server: S3Server, bucket: str, write: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {
        **s3_destination_payload(server, bucket),
        "access_key_id": write[0],
        "secret_access_key": write[1],
        **extra,
    }


def test_the_server_enforces_iam(iam_s3: tuple[S3Server, str, Keys]) -> None:
    server, bucket, _keys = iam_s3
    with pytest.raises(ClientError, match="InvalidAccessKeyId|AccessDenied|InvalidClientTokenId"):
        server.client().list_objects_v2(Bucket=bucket)  # a key IAM does not know


def test_test_connection_proves_the_write_key_cannot_delete(
    api: ApiClient, iam_s3: tuple[S3Server, str, Keys]
) -> None:
    server, bucket, keys = iam_s3
    deleter = keys["deleter"]
    separate = payload(
        server,
        bucket,
        keys["writer"],
        delete_access_key_id=deleter[0],
        delete_secret_access_key=deleter[1],
    )
    answer = api.call("POST", "/api/destinations/test", separate)
    assert answer.status_code == 200, answer.json
    assert (
        "The write key cannot delete (the bucket refused it); the delete key can."
        in (answer.json["message"])
    )

    # Without a delete key the write key is all there is, and it cannot delete its probe.
    answer = api.call("POST", "/api/destinations/test", payload(server, bucket, keys["writer"]))
    assert answer.status_code == 422
    assert "access denied" in answer.json["error"]

    too_strong = payload(
        server,
        bucket,
        keys["everything"],
        delete_access_key_id=deleter[0],
        delete_secret_access_key=deleter[1],
    )
    answer = api.call("POST", "/api/destinations/test", too_strong)
    assert answer.status_code == 422
    assert "the write key could delete the test object" in answer.json["error"]

    half = payload(server, bucket, keys["writer"], delete_access_key_id=deleter[0])
    answer = api.call("POST", "/api/destinations", {**half, "test": False})
    assert answer.status_code == 422
    assert answer.json["fields"]["delete_secret_access_key"] == (
        "Enter both parts of the delete key, or neither."
    )
    listed = api.call("GET", "/api/destinations").json["destinations"]
    assert not any(deleter[1] in json.dumps(item) for item in listed)


def test_only_the_delete_key_deletes_what_the_write_key_stored(
    iam_s3: tuple[S3Server, str, Keys],
) -> None:
    server, bucket, keys = iam_s3
    config = {"bucket": bucket, "endpoint_url": server.endpoint_url, "path_style": True}
    secrets = {
        "access_key_id": keys["writer"][0],
        "secret_access_key": keys["writer"][1],
        "delete_access_key_id": keys["deleter"][0],
        "delete_secret_access_key": keys["deleter"][1],
    }
    target = registry.build("s3", config, secrets)
    target.put_bytes("backups/one.tar.gz", b"archive bytes", "application/octet-stream")
    writer = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=keys["writer"][0],
        aws_secret_access_key=keys["writer"][1],
    )
    with pytest.raises(ClientError, match="AccessDenied"):
        writer.delete_object(Bucket=bucket, Key="backups/one.tar.gz")
    assert target.get_bytes("backups/one.tar.gz") == b"archive bytes"
    target.delete("backups/one.tar.gz")
    assert target.stat("backups/one.tar.gz") is None
