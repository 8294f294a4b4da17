"""Destination kinds: validation of their settings and construction, in one place."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from mackuper.core.naming import normalize_prefix
from mackuper.destinations.base import Destination
from mackuper.destinations.local import LocalDestination
from mackuper.destinations.s3 import S3Destination

SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "s3": ("access_key_id", "secret_access_key"),
    "local": (),
}
STORAGE_CLASSES = {
    "",
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
    "REDUCED_REDUNDANCY",
}
SSE_MODES = {"", "AES256", "aws:kms"}


@dataclass
class Validated:
    config: dict[str, Any]
    secrets: dict[str, str]
    errors: dict[str, str]


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _validate_s3(payload: dict[str, Any], existing: dict[str, str]) -> Validated:
    errors: dict[str, str] = {}
    config: dict[str, Any] = {
        "bucket": _text(payload, "bucket"),
        "region": _text(payload, "region") or "us-east-1",
        "endpoint_url": _text(payload, "endpoint_url"),
        "path_style": bool(payload.get("path_style", False)),
        "storage_class": _text(payload, "storage_class").upper(),
        "server_side_encryption": _text(payload, "server_side_encryption"),
        "kms_key_id": _text(payload, "kms_key_id"),
    }
    parts_in_flight = payload.get("parts_in_flight")
    if parts_in_flight not in (None, ""):
        if isinstance(parts_in_flight, int) and 1 <= parts_in_flight <= 16:
            config["parts_in_flight"] = parts_in_flight
        else:
            errors["parts_in_flight"] = "Upload between 1 and 16 parts at once."
    if not config["bucket"]:
        errors["bucket"] = "Enter the bucket name."
    elif not 3 <= len(config["bucket"]) <= 63 or " " in config["bucket"]:
        errors["bucket"] = "A bucket name has 3 to 63 characters and no spaces."
    try:
        config["prefix"] = normalize_prefix(_text(payload, "prefix"))
    except ValueError as error:
        errors["prefix"] = f"The prefix {error}."
    if config["endpoint_url"]:
        parsed = urlparse(config["endpoint_url"])
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            errors["endpoint_url"] = "The endpoint must be a URL like https://s3.example.com."
    if config["storage_class"] not in STORAGE_CLASSES:
        errors["storage_class"] = "Unknown storage class."
    if config["server_side_encryption"] not in SSE_MODES:
        errors["server_side_encryption"] = "Choose none, AES256 or aws:kms."
    secrets = {name: _text(payload, name) or existing.get(name, "") for name in SECRET_FIELDS["s3"]}
    if not secrets["access_key_id"]:
        errors["access_key_id"] = "Enter the access key ID."
    if not secrets["secret_access_key"]:
        errors["secret_access_key"] = "Enter the secret access key."  # noqa: S105
    return Validated(config, secrets, errors)


def _validate_local(payload: dict[str, Any], existing: dict[str, str]) -> Validated:
    path = _text(payload, "path")
    errors: dict[str, str] = {}
    if not path:
        errors["path"] = "Enter the directory where backups go."
    elif not os.path.isabs(path):
        errors["path"] = "Use an absolute path, such as /data/local_backups."
    return Validated({"path": os.path.normpath(path) if path else ""}, {}, errors)


VALIDATORS: dict[str, Callable[[dict[str, Any], dict[str, str]], Validated]] = {
    "s3": _validate_s3,
    "local": _validate_local,
}


def validate(kind: str, payload: dict[str, Any], existing_secrets: dict[str, str]) -> Validated:
    """Check a destination form; blank secret fields keep `existing_secrets`."""
    validator = VALIDATORS.get(kind)
    if validator is None:
        return Validated({}, {}, {"kind": "Choose S3 or a local directory."})
    return validator(payload, existing_secrets)


def build(kind: str, config: dict[str, Any], secrets: dict[str, Any]) -> Destination:
    """A destination object for stored settings; raises DestinationError when unusable."""
    if kind == "local":
        return LocalDestination(str(config.get("path", "")))
    return S3Destination(
        bucket=str(config.get("bucket", "")),
        region=str(config.get("region", "us-east-1")),
        endpoint_url=config.get("endpoint_url") or None,
        prefix=str(config.get("prefix", "")),
        path_style=bool(config.get("path_style", False)),
        storage_class=config.get("storage_class") or None,
        server_side_encryption=config.get("server_side_encryption") or None,
        kms_key_id=config.get("kms_key_id") or None,
        parts_in_flight=int(config.get("parts_in_flight") or 3),
        access_key_id=str(secrets.get("access_key_id", "")),
        secret_access_key=str(secrets.get("secret_access_key", "")),
    )
