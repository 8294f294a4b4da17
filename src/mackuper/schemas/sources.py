"""Source settings: one model per kind, in `SOURCE_MODELS`.

The public part lands in `Job.source_config`, the marked secrets in
`Job.source_secrets_encrypted`; the shapes are those stored since the first release.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from mackuper.core.globs import validate as validate_glob
from mackuper.schemas.base import (
    KindSettings,
    Lines,
    SecretText,
    Text,
    absolute_paths,
    says,
    sentence,
)
from mackuper.sources.volume import split_container_path
from mackuper.ssh import HostKey, SSHError, load_private_key

_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]+$")
_USER = re.compile(r"^[A-Za-z0-9._@+-]+$")


def _globs(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        if problem := validate_glob(pattern):
            raise ValueError(sentence(problem))
    return patterns


def _some(paths: list[str]) -> list[str]:
    if not paths:
        raise ValueError("Enter at least one path to back up.")
    return paths


def _remote_absolute(paths: list[str]) -> list[str]:
    if bad := [path for path in paths if not posixpath.isabs(path)]:
        raise ValueError(f"Use absolute remote paths ({bad[0]} is relative).")
    return paths


Excludes = Annotated[Lines, AfterValidator(_globs)]


def parse_host_key(text: str) -> str:
    """The OpenSSH line of a host key; ValueError when `text` is not one."""
    try:
        return HostKey.parse(text).line
    except Exception as error:  # noqa: BLE001 - any failure to parse means "not a key"
        raise ValueError("The trusted host key is not an OpenSSH public key.") from error


class LocalSource(KindSettings):
    """Files and folders on the machine that runs the worker."""

    paths: Annotated[Lines, AfterValidator(_some), AfterValidator(absolute_paths)]
    excludes: Excludes = []


class SSHConnection(KindSettings):
    """How to reach and log in to an SSH server (what "Test connection" needs)."""

    show_secret_status = True

    host: Annotated[Text, Field(min_length=1, max_length=255)]
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    username: Annotated[Text, Field(min_length=1, max_length=255)]
    auth: Literal["password", "key"] = "password"
    password: SecretText = ""
    private_key: SecretText = ""
    passphrase: SecretText = ""

    @field_validator("host")
    @classmethod
    def _host(cls, host: str) -> str:
        if not _HOST.match(host) or host.startswith("-"):
            raise ValueError("Use a host name or IP address, without spaces.")
        return host

    @field_validator("username")
    @classmethod
    def _username(cls, username: str) -> str:
        if not _USER.match(username) or username.startswith("-"):
            raise ValueError("Use a user name without spaces or special characters.")
        return username

    def unused_secrets(self) -> set[str]:
        return {"private_key", "passphrase"} if self.auth == "password" else {"password"}

    def problems(self) -> dict[str, str]:
        if self.auth == "password":
            return {} if self.password else {"password": "Enter the password."}
        if not self.private_key:
            return {"private_key": "Paste the private key (OpenSSH or PEM text)."}
        try:
            load_private_key(self.private_key, self.passphrase)
        except SSHError as error:
            field = "passphrase" if "passphrase" in str(error) else "private_key"
            return {field: sentence(str(error))}
        return {}


class SSHProbe(SSHConnection):
    """A connection test: the paths to check and the key trusted so far, both optional."""

    paths: Lines = []
    host_key: Text = ""


class SSHSource(SSHConnection):
    """Paths on a remote host, read over SSH (SFTP or a remote tar); its host key pinned."""

    paths: Annotated[Lines, AfterValidator(_some), AfterValidator(_remote_absolute)]
    excludes: Excludes = []
    transfer: Literal["auto", "tar", "sftp"] = "auto"
    host_key: Annotated[Text, AfterValidator(lambda text: parse_host_key(text) if text else "")] = (
        ""
    )

    def problems(self) -> dict[str, str]:
        problems = super().problems()
        if not self.host_key:
            problems["host_key"] = "Test the connection and trust the server's host key."
        return problems


def _database_names(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("Name each database once.")
    if too_long := [name for name in names if len(name.encode()) > 63]:
        raise ValueError(f"{too_long[0][:20]}... is longer than a PostgreSQL name can be.")
    return names


class PostgresConnection(KindSettings):
    """How to reach a PostgreSQL server and who logs in (what "Test connection" needs).

    The password reaches psql, pg_dump and pg_restore as PGPASSWORD, never an argument.
    """

    host: Annotated[Text, Field(min_length=1, max_length=255)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 5432
    username: Annotated[Text, Field(min_length=1, max_length=63)] = "postgres"
    password: SecretText = ""
    maintenance_database: Annotated[Text, Field(min_length=1, max_length=63)] = "postgres"
    """The database psql connects to for listing the others."""

    @field_validator("host")
    @classmethod
    def _host(cls, host: str) -> str:
        if host.startswith("/"):
            return host  # a UNIX socket directory
        if not _HOST.match(host) or host.startswith("-"):
            raise ValueError("Use a host name, an IP address or a socket directory.")
        return host


class DatabaseSSH(KindSettings):
    """An SSH host the dump tool runs on (for a server bound to its loopback, or SQLite
    files on its disk); empty `ssh_host`: on the worker."""

    ssh_host: Annotated[Text, Field(max_length=255)] = ""
    """Run the dump tool on this SSH host; empty: on the worker."""
    ssh_port: Annotated[int, Field(ge=1, le=65535)] = 22
    ssh_username: Annotated[Text, Field(max_length=255)] = ""
    ssh_auth: Literal["password", "key"] = "password"
    ssh_password: SecretText = ""
    ssh_private_key: SecretText = ""
    ssh_passphrase: SecretText = ""
    ssh_host_key: Annotated[
        Text, AfterValidator(lambda text: parse_host_key(text) if text else "")
    ] = ""

    @field_validator("ssh_host")
    @classmethod
    def _ssh_host(cls, host: str) -> str:
        if host and (not _HOST.match(host) or host.startswith("-")):
            raise ValueError("Use a host name or IP address, without spaces.")
        return host

    def unused_secrets(self) -> set[str]:
        ssh = {"ssh_password", "ssh_private_key", "ssh_passphrase"}
        if not self.ssh_host:
            return ssh
        return (
            {"ssh_private_key", "ssh_passphrase"}
            if self.ssh_auth == "password"
            else {"ssh_password"}
        )

    def problems(self) -> dict[str, str]:
        if not self.ssh_host:
            return {}
        problems: dict[str, str] = {}
        if not self.ssh_username:
            problems["ssh_username"] = "Enter the SSH user name."
        if not self.ssh_host_key:
            problems["ssh_host_key"] = "Paste the SSH host's public key to pin it."
        if self.ssh_auth == "password" and not self.ssh_password:
            problems["ssh_password"] = "Enter the SSH password."  # noqa: S105 - a message
        if self.ssh_auth == "key" and not self.ssh_private_key:
            problems["ssh_private_key"] = "Paste the private key (OpenSSH or PEM text)."
        return problems


class PostgresSource(PostgresConnection, DatabaseSSH):
    """PostgreSQL databases dumped with pg_dump (custom format by default), streamed."""

    databases: Annotated[Lines, AfterValidator(_database_names)] = []
    """Empty: every database that accepts connections."""
    include_globals: bool = True
    """Roles and tablespaces too (pg_dumpall --globals-only)."""
    dump_format: Literal["custom", "plain"] = "custom"
    schema_only: bool = False
    exclude_tables: Lines = []
    """pg_dump --exclude-table patterns."""
    container: Annotated[
        Text,
        Field(max_length=255, pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]*)?$"),
        says("A container name has letters, digits, _ . and - only."),
    ] = ""
    """Run pg_dump inside this container of the container engine (Settings), where the
    server runs: host and port are then as seen from inside it. Empty: on the worker."""

    def problems(self) -> dict[str, str]:
        problems = super().problems()
        if self.container and self.ssh_host:
            problems["container"] = "Run pg_dump in a container or on an SSH host, not both."
        return problems


def _distinct_file_names(paths: list[str]) -> list[str]:
    names = [posixpath.basename(path) for path in paths]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"Two databases are named {twice[0]}: the archive keeps file names.")
    return paths


class SQLiteSource(DatabaseSSH):
    """SQLite database files on the worker's machine (or the SSH host), dumped
    consistently while in use."""

    paths: Annotated[
        Lines,
        AfterValidator(_some),
        AfterValidator(absolute_paths),
        AfterValidator(_distinct_file_names),
    ]


def _server_host(host: str) -> str:
    if not _HOST.match(host) or host.startswith("-"):
        raise ValueError("Use a host name or IP address, without spaces.")
    return host


def _mariadb_names(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("Name each database once.")
    if bad := [name for name in names if len(name) > 64 or name.startswith("-")]:
        raise ValueError(f"{bad[0][:20]} is not a MariaDB database name.")
    return names


ServerHost = Annotated[Text, Field(min_length=1, max_length=255), AfterValidator(_server_host)]


class MariaDBSource(DatabaseSSH):
    """MariaDB or MySQL databases, dumped by mariadb-dump in one consistent snapshot.

    The password reaches mariadb-dump as MYSQL_PWD, never an argument.
    """

    host: ServerHost = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 3306
    username: Annotated[Text, Field(min_length=1, max_length=80)] = "root"
    password: SecretText = ""
    databases: Annotated[Lines, AfterValidator(_mariadb_names)] = []
    """Empty: every database, in one dump."""


class RedisSource(DatabaseSSH):
    """A Redis server's RDB snapshot (redis-cli --rdb); the password travels as REDISCLI_AUTH."""

    host: ServerHost = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 6379
    username: Annotated[Text, Field(max_length=255)] = ""
    """An ACL user; empty: the default user."""
    password: SecretText = ""


_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _volume_names(names: list[str]) -> list[str]:
    if bad := [name for name in names if not _VOLUME_NAME.match(name) or len(name) > 255]:
        raise ValueError(f"{bad[0][:40]} is not a volume name (letters, digits, _ . -).")
    if len(set(names)) != len(names):
        raise ValueError("Name each volume once.")
    return names


def _container_paths(items: list[str]) -> list[str]:
    paths = []
    for item in items:
        try:
            container, path = split_container_path(item)
        except ValueError as error:
            raise ValueError(str(error)[:1].upper() + str(error)[1:] + ".") from None
        paths.append(f"{container}:{path}")
    if len(set(paths)) != len(paths):
        raise ValueError("Name each container path once.")
    return paths


class VolumeSource(KindSettings):
    """Named volumes of the container engine (Settings), and paths inside its containers,
    read through its archive API."""

    container_paths: Annotated[Lines, AfterValidator(_container_paths)] = []
    """`container:/path`, one per line: a folder or file inside a container (running or
    not), stored under `containers/<container>/<path>`."""
    volumes: Annotated[Lines, AfterValidator(_volume_names), Field(validate_default=True)] = []

    @field_validator("volumes")
    @classmethod
    def _something(cls, names: list[str], info: ValidationInfo) -> list[str]:
        if not names and not info.data.get("container_paths"):
            raise ValueError("Choose at least one volume (or container path) to back up.")
        return names


SOURCE_MODELS: dict[str, type[KindSettings]] = {
    "local": LocalSource,
    "ssh": SSHSource,
    "postgresql": PostgresSource,
    "sqlite": SQLiteSource,
    "mariadb": MariaDBSource,
    "redis": RedisSource,
    "volume": VolumeSource,
}
