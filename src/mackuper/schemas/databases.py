"""Database sources' "Test connection" and database restores: request and answer models."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SkipValidation

from mackuper.schemas.answers import Answer
from mackuper.schemas.api import DecryptionKeys
from mackuper.schemas.base import Id, Input, SecretText, Text
from mackuper.schemas.sources import MariaDBSource, PostgresSource, RedisSource, SQLiteSource

DatabaseName = Annotated[Text, Field(min_length=1, max_length=4000)]
"""A database's name, or an SQLite database file's absolute path."""


class PostgresTestBody(Input):
    source: SkipValidation[PostgresSource] = Field(default_factory=dict)  # type: ignore[assignment]
    """The PostgreSQL source form; checked as a PostgresSource (its SSH host, if any, is
    where psql and pg_dump are tried)."""
    job_id: Id | None = None
    """The job being edited: its stored password fills a blank one."""


class PostgresProbeResult(Answer):
    ok: bool
    message: str
    server_version: str
    databases: list[str]
    pg_dump_version: int | None


class MariaDBTestBody(Input):
    source: SkipValidation[MariaDBSource] = Field(default_factory=dict)  # type: ignore[assignment]
    """The MariaDB source form; checked as a MariaDBSource."""
    job_id: Id | None = None
    """The job being edited: its stored password fills a blank one."""


class SQLiteTestBody(Input):
    source: SkipValidation[SQLiteSource] = Field(default_factory=dict)  # type: ignore[assignment]
    """The SQLite source form; checked as an SQLiteSource."""
    job_id: Id | None = None


class RedisTestBody(Input):
    source: SkipValidation[RedisSource] = Field(default_factory=dict)  # type: ignore[assignment]
    """The Redis source form; checked as a RedisSource."""
    job_id: Id | None = None
    """The job being edited: its stored password fills a blank one."""


class DatabaseProbeResult(Answer):
    """MariaDB, SQLite or Redis "Test connection": whether the backup can run, why not,
    the server's version, what it holds, and the dump tool found on this worker."""

    ok: bool
    message: str
    server_version: str
    databases: list[str]
    dump_tool: str
    """The dump tool's version line (mariadb-dump, sqlite3, redis-cli); "" when missing."""


class DatabaseTarget(Input):
    """Where a dump is restored: the job's own server (its stored login) or another.

    For an SQLite dump, `database` is the absolute path of the file on the worker and
    the server fields are not used."""

    same_as_source: bool = True
    host: Annotated[Text, Field(max_length=255)] = ""
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """Empty: the kind's usual port (5432 for PostgreSQL, 3306 for MariaDB)."""
    username: Annotated[Text, Field(max_length=80)] = ""
    password: SecretText = ""
    maintenance_database: Annotated[Text, Field(min_length=1, max_length=63)] = "postgres"
    database: DatabaseName
    """The database to restore into: made new, unless `existing`."""
    existing: bool = False
    """Restore into a database that exists, replacing the objects the dump holds."""
    confirm: Annotated[Text, Field(max_length=4000)] = ""
    """With `existing`: the database's name typed again, to confirm what is overwritten."""


class DumpQuery(Input):
    database: Annotated[Text, Field(min_length=1, max_length=4000)]
    """The dumped database, as the backup's manifest names it (an SQLite file's path)."""


class DumpBody(DumpQuery):
    decryption: DecryptionKeys | None = None
    """The key or passphrase of an encrypted backup whose job stores none: used for this
    request only, never stored."""


class DatabaseRestoreBody(Input):
    artifact_id: Id
    database: DatabaseName
    """The dumped database, as the backup's manifest names it."""
    target: DatabaseTarget
    decryption: DecryptionKeys | None = None
