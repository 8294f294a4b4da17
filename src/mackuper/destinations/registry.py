"""Destination kinds: a destination object from stored settings (mackuper.schemas.destinations
checks the settings themselves)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from mackuper.destinations.base import Destination, DestinationError
from mackuper.destinations.limits import Limited, parse_window
from mackuper.destinations.local import LocalDestination

MIB = 1024 * 1024


def build(
    kind: str, config: dict[str, Any], secrets: dict[str, Any], retry_seconds: float = 0.0
) -> Destination:
    """A destination object for stored settings; raises DestinationError when unusable.

    `retry_seconds`: how long a storage outage is ridden out (a backup passes
    MACKUPER_RETRY_SECONDS; a web request, where a person waits, none). A
    `bandwidth_limit` (MiB/s) paces its uploads and reads (destinations/limits.py), within
    `bandwidth_window` when one is set.
    """
    destination = _build_kind(kind, config, secrets, retry_seconds)
    limit = config.get("bandwidth_limit")
    if isinstance(limit, int | float) and limit > 0:
        try:
            window = parse_window(str(config.get("bandwidth_window") or ""))
        except ValueError as error:
            raise DestinationError(f"the bandwidth window: {error}") from None
        return Limited(destination, float(limit) * MIB, window)
    return destination


def warm_up(kinds: Collection[str]) -> None:
    """Load now, once per process, what a destination of `kinds` loads on first use
    beyond its modules (an S3 client's service data); see `Worker.warm_up`."""
    if "s3" in kinds:
        from mackuper.destinations.s3 import warm_up as warm_up_s3

        warm_up_s3()


def _build_kind(
    kind: str, config: dict[str, Any], secrets: dict[str, Any], retry_seconds: float
) -> Destination:
    # Each remote kind is imported when a destination of that kind is built: boto3 and
    # paramiko cost the worker ~22 MiB of RSS, which a worker writing to local disks
    # should not carry (issue 23's memory goal).
    if kind == "local":
        return LocalDestination(str(config.get("path", "")))
    if kind == "sftp":
        from mackuper.destinations.sftp import SFTPDestination
        from mackuper.ssh import SSHTarget

        try:
            target = SSHTarget.from_config(config, secrets, retry_seconds)
        except ValueError:
            raise DestinationError("the trusted host key is not an OpenSSH public key") from None
        return SFTPDestination(target, str(config.get("path", "")), retry_seconds)
    if kind == "rclone":
        from mackuper.destinations.rclone import RcloneDestination, parse_options

        try:
            secret_options = parse_options(str(secrets.get("secret_options") or ""))
        except ValueError as error:
            raise DestinationError(f"the secret options: {error}") from None
        return RcloneDestination(
            remote_type=str(config.get("remote_type", "")),
            options={
                str(name): str(value) for name, value in dict(config.get("options") or {}).items()
            },
            secret_options=secret_options,
            path=str(config.get("path", "")),
            retry_seconds=retry_seconds,
        )
    from mackuper.destinations.s3 import S3Destination

    return S3Destination(
        bucket=str(config.get("bucket", "")),
        region=str(config.get("region", "us-east-1")),
        endpoint_url=config.get("endpoint_url") or None,
        prefix=str(config.get("prefix", "")),
        path_style=bool(config.get("path_style", False)),
        storage_class=config.get("storage_class") or None,
        server_side_encryption=config.get("server_side_encryption") or None,
        kms_key_id=config.get("kms_key_id") or None,
        object_lock_mode=str(config.get("object_lock_mode") or ""),
        parts_in_flight=int(config.get("parts_in_flight") or 3),
        access_key_id=str(secrets.get("access_key_id", "")),
        secret_access_key=str(secrets.get("secret_access_key", "")),
        delete_key=(
            str(secrets.get("delete_access_key_id", "")),
            str(secrets.get("delete_secret_access_key", "")),
        ),
        retry_seconds=retry_seconds,
    )
