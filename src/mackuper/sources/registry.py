"""Source kinds: a source object from a job's stored settings (mackuper.schemas.sources
checks the settings themselves)."""

from __future__ import annotations

from typing import Any

from mackuper.sources.base import Source, SourceError
from mackuper.sources.local import LocalSource
from mackuper.sources.mariadb import MariaDBSource
from mackuper.sources.postgres import PostgresSource
from mackuper.sources.redis import RedisSource
from mackuper.sources.sqlite import SQLiteSource
from mackuper.sources.ssh import SSHSource
from mackuper.sources.volume import VolumeSource


def build(
    kind: str,
    config: dict[str, Any],
    secrets: dict[str, Any],
    retry_seconds: float = 0.0,
    engine: tuple[str, str] = ("", ""),
) -> Source:
    """A source for stored settings; `retry_seconds`: how long a lost connection is made
    again before the run fails (a backup passes MACKUPER_RETRY_SECONDS); `engine`: the
    container engine's address and helper image (Settings) for volume sources."""
    if kind == "local":
        return LocalSource(config.get("paths", []), config.get("excludes", []))
    if kind == "ssh":
        return SSHSource.from_config(config, secrets, retry_seconds)
    if kind == "postgresql":
        return PostgresSource.from_config(config, secrets, retry_seconds, engine[0])
    if kind == "sqlite":
        return SQLiteSource.from_config(config, secrets, retry_seconds)
    if kind == "mariadb":
        return MariaDBSource.from_config(config, secrets, retry_seconds)
    if kind == "redis":
        return RedisSource.from_config(config, secrets, retry_seconds)
    if kind == "volume":
        return VolumeSource(
            engine[0],
            list(config.get("volumes", [])),
            engine[1],
            container_paths=list(config.get("container_paths", [])),
        )
    raise SourceError(f"unknown source kind {kind!r}")
