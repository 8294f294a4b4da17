"""Destination settings: one model per kind, in `DESTINATION_MODELS`.

The public part lands in `Destination.config`, the marked secrets in
`Destination.secrets_encrypted`; the shapes are those stored since the first release.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from mackuper.core.naming import normalize_prefix
from mackuper.destinations import rclone
from mackuper.destinations.base import DestinationError
from mackuper.destinations.limits import parse_window
from mackuper.schemas.base import AbsolutePath, KindSettings, SecretText, Text, sentence
from mackuper.schemas.sources import SSHConnection, parse_host_key

StorageClass = Literal[
    "",
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
    "REDUCED_REDUNDANCY",
]


_PRINTABLE_ASCII = r"^[!-~]*$"
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _endpoint_ok(url: str) -> bool:
    """An http(s) URL whose host botocore accepts: DNS labels, an IPv4 or IPv6 address."""
    try:
        parsed = urlparse(url)
        host, _port = parsed.hostname or "", parsed.port
    except ValueError:
        return False
    if parsed.scheme not in {"http", "https"} or not host or len(host) > 255:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return all(_HOST_LABEL.match(label) for label in host.rstrip(".").split("."))
    return True


def _remote_directory(path: str) -> str:
    if not path:
        raise ValueError("Enter the directory on the server where backups go.")
    if not posixpath.isabs(path):
        raise ValueError(f"Use an absolute path on the server ({path} is relative).")
    return posixpath.normpath(path)


def _normalized_path(path: str) -> str:
    if not path:
        raise ValueError("Enter the directory where backups go.")
    return os.path.normpath(path)


def _window(text: str) -> str:
    try:
        parse_window(text)
    except ValueError as error:
        raise ValueError(sentence(f"the bandwidth window: {error}")) from error
    return text


class Bandwidth(KindSettings):
    """What every destination kind has: an optional bandwidth limit."""

    bandwidth_limit: Annotated[float, Field(gt=0, le=100_000)] | None = None
    """MiB/s for uploads and for reads (restores, verification); none: as fast as it goes."""
    bandwidth_window: Annotated[Text, AfterValidator(_window)] = ""
    """`HH:MM-HH:MM` in the worker's local time: the limit holds only then; '': always."""

    def public(self) -> dict[str, Any]:
        data = super().public()
        if data.get("bandwidth_limit", 0) is None:
            del data["bandwidth_limit"]
        if not data.get("bandwidth_window", "x"):
            del data["bandwidth_window"]
        return data


class LocalDestination(Bandwidth):
    """A directory on the worker's machine (a mounted disk or share)."""

    path: Annotated[AbsolutePath, AfterValidator(_normalized_path)]


class S3Destination(Bandwidth):
    """A bucket on AWS S3 or any S3-compatible server."""

    bucket: Annotated[Text, Field(min_length=3, max_length=63, pattern=r"^[A-Za-z0-9._-]*$")]
    """3 to 63 letters, digits, dots, hyphens (and underscores, which some servers allow)."""
    region: Annotated[
        Text,
        Field(max_length=63, pattern=r"^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)?$"),
        AfterValidator(lambda region: region or "us-east-1"),
    ] = "us-east-1"
    """Letters, digits and inner hyphens, as botocore requires (blank: us-east-1)."""
    endpoint_url: Text = ""
    path_style: bool = False
    storage_class: StorageClass = ""
    server_side_encryption: Literal["", "AES256", "aws:kms"] = ""
    kms_key_id: Text = ""
    prefix: Text = ""
    parts_in_flight: Annotated[int, Field(ge=1, le=16)] | None = None
    object_lock_mode: Literal["", "GOVERNANCE", "COMPLIANCE"] = ""
    """S3 Object Lock: each archive and manifest stays immutable in this mode until the
    date its job's retention promises to keep it (the bucket needs Object Lock)."""
    lock_days: Annotated[int, Field(ge=1, le=36_500)] | None = None
    """With Object Lock: days every backup stays locked at least (what keep-last, which
    counts backups and promises no time, is taken to mean)."""
    access_key_id: Annotated[SecretText, Field(pattern=_PRINTABLE_ASCII)] = ""
    secret_access_key: Annotated[SecretText, Field(pattern=_PRINTABLE_ASCII)] = ""
    delete_access_key_id: Annotated[SecretText, Field(pattern=_PRINTABLE_ASCII)] = ""
    """Optional: a second key, used only to delete (retention); the key above then needs
    no delete right, and Test connection proves it has none."""
    delete_secret_access_key: Annotated[SecretText, Field(pattern=_PRINTABLE_ASCII)] = ""

    @field_validator("storage_class", "object_lock_mode", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        try:
            return normalize_prefix(prefix)
        except ValueError as error:
            raise ValueError(f"The prefix {error}.") from error

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, url: str) -> str:
        if url and not _endpoint_ok(url):
            raise ValueError("The endpoint must be a URL like https://s3.example.com.")
        return url

    def problems(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        if not self.access_key_id:
            problems["access_key_id"] = "Enter the access key ID."
        if not self.secret_access_key:
            problems["secret_access_key"] = "Enter the secret access key."  # noqa: S105
        if bool(self.delete_access_key_id) != bool(self.delete_secret_access_key):
            missing = (
                "delete_secret_access_key" if self.delete_access_key_id else "delete_access_key_id"
            )
            problems[missing] = "Enter both parts of the delete key, or neither."
        if self.object_lock_mode and self.lock_days is None:
            problems["lock_days"] = "Enter the days each backup stays locked at least."
        return problems

    def public(self) -> dict[str, object]:
        data = super().public()
        for optional in ("parts_in_flight", "lock_days"):
            if data[optional] is None:
                del data[optional]
        if not data["object_lock_mode"]:
            del data["object_lock_mode"]
        return data


class SFTPDestination(SSHConnection, Bandwidth):
    """A directory on an SFTP server; its host key pinned as for SSH sources."""

    path: Annotated[Text, AfterValidator(_remote_directory)]
    host_key: Annotated[Text, AfterValidator(lambda text: parse_host_key(text) if text else "")] = (
        ""
    )

    def problems(self) -> dict[str, str]:
        problems = super().problems()
        if not self.host_key:
            problems["host_key"] = "Test the connection and trust the server's host key."
        return problems


def _option_lines(value: object) -> object:
    """A textarea's `name = value` lines as a dict; a dict passes on to be checked."""
    if isinstance(value, str):
        try:
            return rclone.parse_options(value)
        except ValueError as error:
            raise ValueError(sentence(str(error))) from error
    return value


def _secret_option_lines(text: str) -> str:
    try:
        rclone.parse_options(text)
    except ValueError as error:
        raise ValueError(sentence(str(error))) from error
    return text


OptionName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")]
OptionValue = Annotated[Text, Field(max_length=2000, pattern=r"^[^\r\n]*$")]


class RcloneDestination(Bandwidth):
    """Any remote rclone supports: its type, its options, and where on it backups go."""

    remote_type: Annotated[Text, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9]*$")]
    """rclone's name for the backend: b2, drive, onedrive, azureblob, webdav, smb, ..."""
    options: Annotated[
        dict[OptionName, OptionValue],
        BeforeValidator(_option_lines),
        WithJsonSchema(
            {
                "description": "Options by name, or text of 'name = value' lines.",
                "anyOf": [
                    {"type": "object", "additionalProperties": {"type": "string"}},
                    {"type": "string"},
                ],
            }
        ),
    ] = {}
    """The backend's options that are not secret (`rclone help backend <type>`)."""
    secret_options: Annotated[SecretText, AfterValidator(_secret_option_lines)] = ""
    """Passwords, keys and tokens as `name = value` lines; encrypted at rest."""
    path: Annotated[Text, Field(max_length=1000)] = ""
    """Where on the remote backups go: 'bucket/backups', '/srv/backups', or the root."""

    @field_validator("remote_type")
    @classmethod
    def _known(cls, remote_type: str) -> str:
        try:
            known = rclone.backends()
        except DestinationError as error:
            raise ValueError(sentence(str(error))) from error
        if remote_type not in known:
            raise ValueError(
                f"rclone has no backend named {remote_type!r} (rclone help backends lists them)."
            )
        return remote_type

    def problems(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        try:
            known = rclone.backends().get(self.remote_type, {})
            secret = rclone.secret_option_names(self.remote_type)
        except DestinationError as error:
            return {"remote_type": sentence(str(error))}
        given = {"options": set(self.options), "secret_options": set()}
        given["secret_options"] = set(rclone.parse_options(self.secret_options))
        for field, names in given.items():
            if unknown := sorted(names - set(known)):
                problems[field] = (
                    f"The {self.remote_type} backend has no option {unknown[0]!r}"
                    f" (rclone help backend {self.remote_type} lists them)."
                )
        if exposed := sorted(set(self.options) & secret):
            problems["options"] = f"{exposed[0]!r} is a secret: put it in the secret options."
        return problems


DESTINATION_MODELS: dict[str, type[KindSettings]] = {
    "local": LocalDestination,
    "s3": S3Destination,
    "sftp": SFTPDestination,
    "rclone": RcloneDestination,
}
