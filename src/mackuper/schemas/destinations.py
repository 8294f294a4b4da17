"""Destination settings: one model per kind, in `DESTINATION_MODELS`.

The public part lands in `Destination.config`, the marked secrets in
`Destination.secrets_encrypted`; the shapes are those stored since the first release.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import AfterValidator, Field, field_validator

from mackuper.core.naming import normalize_prefix
from mackuper.schemas.base import AbsolutePath, KindSettings, SecretText, Text
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


class LocalDestination(KindSettings):
    """A directory on the worker's machine (a mounted disk or share)."""

    path: Annotated[AbsolutePath, AfterValidator(_normalized_path)]


class S3Destination(KindSettings):
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
    access_key_id: Annotated[SecretText, Field(pattern=_PRINTABLE_ASCII)] = ""
    secret_access_key: Annotated[SecretText, Field(pattern=_PRINTABLE_ASCII)] = ""

    @field_validator("storage_class", mode="before")
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
        return problems

    def public(self) -> dict[str, object]:
        data = super().public()
        if data["parts_in_flight"] is None:
            del data["parts_in_flight"]
        return data


class SFTPDestination(SSHConnection):
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


DESTINATION_MODELS: dict[str, type[KindSettings]] = {
    "local": LocalDestination,
    "s3": S3Destination,
    "sftp": SFTPDestination,
}
