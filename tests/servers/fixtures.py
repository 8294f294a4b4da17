"""Pytest fixtures that start real servers on free loopback ports.

Use them from a conftest with ``from tests.servers.fixtures import *``.

==================  ========  ==================================================
fixture             scope     yields
==================  ========  ==================================================
``moto_s3``         session   :class:`S3Server` for moto's S3 server
``rclone_s3``       session   :class:`S3Server` for ``rclone serve s3``
``s3_server``       session   each of the two in turn (ids ``moto``/``rclone``)
``s3_bucket``       function  :class:`S3Bucket` ``(server, name)``: a fresh bucket
                              on ``s3_server``, emptied and removed afterwards
``sshd_server``     session   :class:`SSHServer`: a throwaway OpenSSH sshd
``sshd``            function  the same server, restarted after the test if the
                              test stopped it
``rclone_sftp``     session   :class:`RcloneRemote`: ``rclone serve sftp``
``rclone_webdav``   session   :class:`RcloneRemote`: ``rclone serve webdav``
``postgres_url``    session   ``postgresql+psycopg://postgres@127.0.0.1:PORT/DB``
                              for a fresh database, dropped afterwards
==================  ========  ==================================================
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.postgres import PostgresServer, running_postgres, temporary_database
from tests.servers.rclone_remotes import RcloneRemote, running_remote
from tests.servers.s3 import (
    S3Bucket,
    S3Server,
    remove_bucket,
    running_moto,
    running_rclone,
    unique_bucket_name,
)
from tests.servers.sshd import SSHD, SSHServer, running_sshd

__all__ = [
    "moto_s3",
    "empty_postgres_url",
    "postgres_server",
    "postgres_url",
    "rclone_s3",
    "rclone_sftp",
    "rclone_webdav",
    "s3_bucket",
    "s3_server",
    "sshd",
    "sshd_server",
]

S3_KINDS = ["moto", "rclone"]


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    """moto's S3 server in a subprocess with its own ``TMPDIR``."""
    with running_moto() as server:
        yield server


@pytest.fixture(scope="session")
def rclone_s3() -> Iterator[S3Server]:
    """``rclone serve s3`` over a temp directory, checking SigV4 signatures."""
    with running_rclone() as server:
        yield server


@pytest.fixture(scope="session")
def rclone_sftp() -> Iterator[RcloneRemote]:
    """``rclone serve sftp`` over a temp directory, with a user and password."""
    with running_remote("sftp") as remote:
        yield remote


@pytest.fixture(scope="session")
def rclone_webdav() -> Iterator[RcloneRemote]:
    """``rclone serve webdav`` over a temp directory, with a user and password."""
    with running_remote("webdav") as remote:
        yield remote


@pytest.fixture(scope="session", params=S3_KINDS, ids=S3_KINDS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 implementation in turn: one contract suite runs against both."""
    server: S3Server = request.getfixturevalue(f"{request.param}_s3")
    return server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[S3Bucket]:
    """A fresh, uniquely named bucket on ``s3_server``; removed after the test."""
    s3_server.start()
    bucket = S3Bucket(s3_server, s3_server.make_bucket(unique_bucket_name()))
    yield bucket
    s3_server.start()  # the test may have stopped the server
    remove_bucket(s3_server, bucket.name)


@pytest.fixture(scope="session")
def sshd_server() -> Iterator[SSHServer]:
    """A throwaway OpenSSH sshd with password, key and passphrase-key users."""
    if not SSHD.exists():
        pytest.skip(f"{SSHD} not found: apt-get install -y openssh-server")
    with running_sshd() as server:
        yield server


@pytest.fixture
def sshd(sshd_server: SSHServer) -> Iterator[SSHServer]:
    """``sshd_server``, running at the start of the test and restarted after it."""
    sshd_server.start()
    yield sshd_server
    sshd_server.start()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A usable PostgreSQL server for the whole session."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A SQLAlchemy URL to a fresh PostgreSQL database (dropped at the end)."""
    with temporary_database(postgres_server) as dbname:
        yield postgres_server.url(dbname)


@pytest.fixture
def empty_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A URL to an empty database of this test's own (migrations really run there)."""
    with temporary_database(postgres_server) as dbname:
        yield postgres_server.url(dbname)
