"""The test servers themselves work: S3 (moto, rclone), sshd and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import psycopg
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.servers.ports import free_port, port_is_open
from tests.servers.postgres import (
    debian_cluster,
    debian_clusters,
    temporary_database,
    throwaway_cluster,
)
from tests.servers.s3 import S3Bucket, S3Server
from tests.servers.sshd import SSHServer, generate_key

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


# --- ports -------------------------------------------------------------------


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 1024 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert not port_is_open(port)


# --- S3, both implementations ------------------------------------------------


def test_put_get_list(s3_bucket: S3Bucket) -> None:
    server, bucket = s3_bucket
    client = server.client()
    for key in ("job/2024/01/a.tar", "job/2024/02/b.tar", "other/c.txt"):
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())

    body = client.get_object(Bucket=bucket, Key="job/2024/02/b.tar")["Body"].read()
    assert body == b"job/2024/02/b.tar"

    listed = client.list_objects_v2(Bucket=bucket, Prefix="job/")
    assert [item["Key"] for item in listed["Contents"]] == [
        "job/2024/01/a.tar",
        "job/2024/02/b.tar",
    ]
    tops = client.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in tops["CommonPrefixes"]] == ["job/", "other/"]


def test_head_and_delete(s3_bucket: S3Bucket) -> None:
    server, bucket = s3_bucket
    client = server.client()
    client.put_object(Bucket=bucket, Key="x/manifest.json", Body=b"{}")
    assert client.head_object(Bucket=bucket, Key="x/manifest.json")["ContentLength"] == 2

    client.delete_object(Bucket=bucket, Key="x/manifest.json")
    with pytest.raises(ClientError) as caught:
        client.head_object(Bucket=bucket, Key="x/manifest.json")
    assert caught.value.response["Error"]["Code"] in {"404", "NoSuchKey"}
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []


def test_multipart_upload_complete(s3_bucket: S3Bucket) -> None:
    server, bucket = s3_bucket
    client = server.client()
    parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"tail"]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]

    pending = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in pending] == [("big.bin", upload_id)]

    parts = []
    for number, data in enumerate(parts_data, start=1):
        etag = client.upload_part(
            Bucket=bucket, Key="big.bin", UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    listed = client.list_parts(Bucket=bucket, Key="big.bin", UploadId=upload_id)["Parts"]
    assert [p["Size"] for p in listed] == [5 * MIB, 5 * MIB, 4]

    client.complete_multipart_upload(
        Bucket=bucket, Key="big.bin", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    body = client.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts_data)).digest()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_upload_abort_leaves_nothing(s3_bucket: S3Bucket) -> None:
    server, bucket = s3_bucket
    client = server.client()
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="partial.bin")["UploadId"]
    client.upload_part(
        Bucket=bucket, Key="partial.bin", UploadId=upload_id, PartNumber=1, Body=os.urandom(MIB)
    )
    client.abort_multipart_upload(Bucket=bucket, Key="partial.bin", UploadId=upload_id)

    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    with pytest.raises(ClientError):
        client.head_object(Bucket=bucket, Key="partial.bin")


def test_transfer_manager_parallel_multipart(s3_bucket: S3Bucket) -> None:
    server, bucket = s3_bucket
    client = server.client()
    data = os.urandom(17 * MIB)
    config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4
    )
    client.upload_fileobj(io.BytesIO(data), bucket, "stream.bin", Config=config)

    out = io.BytesIO()
    client.download_fileobj(bucket, "stream.bin", out, Config=config)
    assert out.getvalue() == data
    assert client.head_object(Bucket=bucket, Key="stream.bin")["ContentLength"] == len(data)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_servers_are_separate_processes(s3_server: S3Server) -> None:
    assert s3_server.process is not None
    assert s3_server.process.pid != os.getpid()
    assert s3_server.is_running()
    names = [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
    assert isinstance(names, list)


def test_moto_has_private_tmpdir(moto_s3: S3Server) -> None:
    assert moto_s3.process is not None
    environ = Path(f"/proc/{moto_s3.process.pid}/environ").read_bytes().split(b"\0")
    tmpdirs = [item.split(b"=", 1)[1].decode() for item in environ if item.startswith(b"TMPDIR=")]
    assert len(tmpdirs) == 1
    assert Path(tmpdirs[0]).is_dir()
    assert Path(tmpdirs[0]).name == "tmp"
    assert Path(tmpdirs[0]).parent.name.startswith("mkp-moto-")


def test_rclone_rejects_wrong_secret(rclone_s3: S3Server) -> None:
    bad = rclone_s3.client(secret_key="not-the-secret", retries={"max_attempts": 1})  # noqa: S106
    with pytest.raises(ClientError) as caught:
        bad.list_buckets()
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_rclone_rejects_unknown_access_key(rclone_s3: S3Server) -> None:
    stranger = S3Server("stranger", rclone_s3.endpoint_url, "NOBODY123", rclone_s3.secret_key)
    with pytest.raises(ClientError) as caught:
        stranger.client(retries={"max_attempts": 1}).list_buckets()
    assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_rclone_stores_plain_files(rclone_s3: S3Server) -> None:
    bucket = rclone_s3.make_bucket()
    rclone_s3.client().put_object(Bucket=bucket, Key="a/b/c.txt", Body=b"plain")
    assert rclone_s3.data_dir is not None
    assert (rclone_s3.data_dir / bucket / "a" / "b" / "c.txt").read_bytes() == b"plain"


def test_rclone_survives_restart(rclone_s3: S3Server) -> None:
    bucket = rclone_s3.make_bucket()
    rclone_s3.client().put_object(Bucket=bucket, Key="kept", Body=b"still here")
    rclone_s3.stop()
    assert not rclone_s3.is_running()
    with pytest.raises(EndpointConnectionError):
        rclone_s3.client(retries={"max_attempts": 1}).list_buckets()

    rclone_s3.start()
    body = rclone_s3.client().get_object(Bucket=bucket, Key="kept")["Body"].read()
    assert body == b"still here"


# --- sshd ----------------------------------------------------------------------


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """Parse an OpenSSH private key of any supported type.

    ``paramiko.PKey.from_private_key`` only works on a concrete key class, so
    try each in turn (a wrong passphrase fails with every class).
    """
    errors: list[Exception] = []
    for key_class in (paramiko.Ed25519Key, paramiko.RSAKey, paramiko.ECDSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.SSHException as error:
            errors.append(error)
    raise paramiko.SSHException(f"cannot load private key: {errors}")


def host_key_of(server: SSHServer) -> paramiko.PKey:
    """The server's host key as paramiko sees it (from the fixture's public line)."""
    key_type, blob = server.host_public_key.split()
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))


@pytest.fixture
def ssh_client(sshd: SSHServer) -> Iterator[paramiko.SSHClient]:
    """A paramiko client that trusts only the test server's pinned host key."""
    client = paramiko.SSHClient()
    key = host_key_of(sshd)
    client.get_host_keys().add(f"[{sshd.host}]:{sshd.port}", key.get_name(), key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    yield client
    client.close()


def connect(
    client: paramiko.SSHClient,
    server: SSHServer,
    username: str,
    password: str | None = None,
    pkey: paramiko.PKey | None = None,
) -> None:
    """Log in with exactly the given credentials (no agent, no ~/.ssh keys)."""
    client.connect(
        server.host,
        port=server.port,
        username=username,
        password=password,
        pkey=pkey,
        allow_agent=False,
        look_for_keys=False,
        timeout=10,
        banner_timeout=10,
        auth_timeout=10,
    )


def run_remote(client: paramiko.SSHClient, command: str) -> str:
    """Run ``command`` over SSH; return its stdout, assert it succeeded."""
    _stdin, stdout, stderr = client.exec_command(command, timeout=20)
    out = stdout.read().decode()
    assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
    return out


def test_sshd_password_login(sshd: SSHServer, ssh_client: paramiko.SSHClient) -> None:
    username, password, private_key, passphrase = sshd.users["password"]
    assert password is not None
    assert private_key is None
    assert passphrase is None
    connect(ssh_client, sshd, username, password=password)
    assert run_remote(ssh_client, "id -un").strip() == username


def test_sshd_rejects_wrong_password(sshd: SSHServer, ssh_client: paramiko.SSHClient) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        connect(ssh_client, sshd, sshd.users["password"].username, password="wrong")  # noqa: S106


def test_sshd_key_login(sshd: SSHServer, ssh_client: paramiko.SSHClient) -> None:
    user = sshd.users["key"]
    assert user.private_key is not None
    assert user.password is None
    assert user.passphrase is None
    pkey = load_private_key(user.private_key)
    assert pkey.get_name() == "ssh-ed25519"
    connect(ssh_client, sshd, user.username, pkey=pkey)
    assert run_remote(ssh_client, "id -un").strip() == user.username


def test_sshd_key_user_cannot_use_a_password(
    sshd: SSHServer, ssh_client: paramiko.SSHClient
) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        connect(ssh_client, sshd, sshd.users["key"].username, password="")


def test_sshd_passphrase_key_login(sshd: SSHServer, ssh_client: paramiko.SSHClient) -> None:
    user = sshd.users["key_passphrase"]
    assert user.private_key is not None
    assert user.passphrase
    with pytest.raises(paramiko.SSHException):
        load_private_key(user.private_key, "wrong")
    with pytest.raises(paramiko.SSHException):
        load_private_key(user.private_key)
    pkey = load_private_key(user.private_key, user.passphrase)
    assert pkey.get_name() == "ssh-rsa"
    connect(ssh_client, sshd, user.username, pkey=pkey)
    assert run_remote(ssh_client, "id -un").strip() == user.username


def test_sshd_host_key_fingerprint(sshd: SSHServer, ssh_client: paramiko.SSHClient) -> None:
    user = sshd.users["password"]
    connect(ssh_client, sshd, user.username, password=user.password)
    transport = ssh_client.get_transport()
    assert transport is not None
    seen = transport.get_remote_server_key()
    digest = base64.b64encode(hashlib.sha256(seen.asbytes()).digest()).decode().rstrip("=")
    assert sshd.host_key_fingerprint == f"SHA256:{digest}"
    assert sshd.host_public_key == f"{seen.get_name()} {seen.get_base64()}"


def test_sshd_openssh_client_with_pinned_host_key(sshd: SSHServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line() + "\n")
    user = sshd.users["key"]
    argv = ["ssh", "-F", "/dev/null", "-i", str(sshd.key_path("key")), "-p", str(sshd.port)]
    argv += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes"]
    argv += ["-o", f"UserKnownHostsFile={known_hosts}", f"{user.username}@{sshd.host}"]
    result = subprocess.run(  # noqa: S603
        [*argv, "echo", "hello"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"

    generate_key(tmp_path / "other_host_key", "ed25519")
    other = (tmp_path / "other_host_key.pub").read_text().split()[:2]
    known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {' '.join(other)}\n")
    result = subprocess.run(  # noqa: S603
        [*argv, "true"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_sshd_sftp_reads_remote_tree(sshd: SSHServer, ssh_client: paramiko.SSHClient) -> None:
    user = sshd.users["password"]
    root = sshd.make_remote_tree(
        user.username, {"docs/a.txt": "alpha", "docs/sub/b.bin": b"\x00\x01", "top.txt": "t"}
    )
    connect(ssh_client, sshd, user.username, password=user.password)
    sftp = ssh_client.open_sftp()
    try:
        assert sorted(sftp.listdir(str(root))) == ["docs", "top.txt"]
        with sftp.open(str(root / "docs" / "sub" / "b.bin")) as remote:
            assert remote.read() == b"\x00\x01"
        owner = sftp.stat(str(root / "docs" / "a.txt")).st_uid
    finally:
        sftp.close()
    assert owner == int(run_remote(ssh_client, "id -u"))
    listing = run_remote(ssh_client, f"cd {root} && tar -cf - docs | tar -tf - | sort")
    assert listing.split() == ["docs/", "docs/a.txt", "docs/sub/", "docs/sub/b.bin"]


def test_sshd_stop_drops_sessions_and_start_restores(
    sshd: SSHServer, ssh_client: paramiko.SSHClient
) -> None:
    user = sshd.users["password"]
    connect(ssh_client, sshd, user.username, password=user.password)
    transport = ssh_client.get_transport()
    assert transport is not None

    sshd.stop()
    assert not sshd.is_running()
    assert not port_is_open(sshd.port)
    transport.join(timeout=10)
    assert not transport.is_active()

    sshd.start()
    again = paramiko.SSHClient()
    again.set_missing_host_key_policy(paramiko.RejectPolicy())
    key = host_key_of(sshd)
    again.get_host_keys().add(f"[{sshd.host}]:{sshd.port}", key.get_name(), key)
    try:
        connect(again, sshd, user.username, password=user.password)
        assert run_remote(again, "echo back").strip() == "back"
    finally:
        again.close()


def test_sshd_left_stopped_is_restarted_for_the_next_test(sshd: SSHServer) -> None:
    sshd.stop()
    assert not sshd.is_running()


def test_sshd_is_running_again(sshd: SSHServer) -> None:
    assert sshd.is_running()
    assert port_is_open(sshd.port)


# --- PostgreSQL ------------------------------------------------------------------


def plain_url(url: str) -> str:
    """Turn the SQLAlchemy URL into a libpq one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_postgres_select_one(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    dbname = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(plain_url(postgres_url), connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone() == (dbname,)
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_postgres_throwaway_cluster() -> None:
    """The initdb fallback (used where no server runs) works on its own."""
    with throwaway_cluster() as server, temporary_database(server) as dbname:
        assert server.origin == "initdb"
        assert server.port != 5432
        with psycopg.connect(plain_url(server.url(dbname)), connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        port = server.port
    assert not port_is_open(port)


def test_postgres_debian_cluster() -> None:
    """The pg_ctlcluster option finds (and if needed starts) Debian's cluster."""
    if not any(cluster.name == "main" for cluster in debian_clusters()):
        pytest.skip("no Debian 'main' PostgreSQL cluster on this machine")
    with debian_cluster() as server:
        if server is None:
            pytest.skip("the Debian cluster does not trust the postgres role over TCP")
        assert server.origin == "pg_ctlcluster"
        with server.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
