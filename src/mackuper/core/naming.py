"""Names: job slugs, archive extensions and the storage layout.

Layout (DESIGN.md): `[prefix/]{job-slug}/{YYYY}/{MM}/backup_{YYYYMMDD_HHMMSS}.{ext}[.age]`,
with the manifest at the same name plus `.manifest.json`. Times are UTC.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

ARCHIVE_FORMATS: dict[str, str] = {
    "tar": "tar",
    "tar.gz": "tar.gz",
    "tar.bz2": "tar.bz2",
    "tar.xz": "tar.xz",
    "tar.zst": "tar.zst",
    "zip": "zip",
}
"""Format name -> file extension."""

MANIFEST_SUFFIX = ".manifest.json"
ENCRYPTED_SUFFIX = ".age"


def slugify(name: str) -> str:
    """A storage-safe name: lower case ASCII letters, digits and dashes."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:80] or "job"


def normalize_prefix(prefix: str) -> str:
    """'' or 'a/b/' (no leading slash, exactly one trailing slash)."""
    parts = [part for part in prefix.strip().split("/") if part not in {"", "."}]
    if any(part == ".." for part in parts):
        raise ValueError("prefix must not contain '..'")
    return "/".join(parts) + "/" if parts else ""


def archive_key(
    prefix: str, slug: str, started_at: datetime, archive_format: str, encrypted: bool = False
) -> str:
    """The object key of a backup started at `started_at` (an aware datetime).

    An age-encrypted archive gets ENCRYPTED_SUFFIX after the format's extension.
    """
    when = started_at.astimezone(UTC)
    extension = ARCHIVE_FORMATS[archive_format]
    return (
        f"{normalize_prefix(prefix)}{slug}/{when:%Y}/{when:%m}/"
        f"backup_{when:%Y%m%d_%H%M%S}.{extension}{ENCRYPTED_SUFFIX if encrypted else ''}"
    )


def manifest_key(archive: str) -> str:
    return archive + MANIFEST_SUFFIX
