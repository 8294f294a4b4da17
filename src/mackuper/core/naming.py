"""Names: job slugs, archive extensions and the storage layout.

Layout (DESIGN.md): `[prefix/]{job-slug}/{YYYY}/{MM}/backup_{YYYYMMDD_HHMMSS}.{ext}[.age]`,
with the manifest at the same name plus `.manifest.json`. Times are UTC.

Names have one-second resolution, and two runs of a job can start in the same
second (two workers, a manual run meeting a schedule tick, quick queued runs). The
first run of a second keeps the seed's name; the next ones get `-2`, `-3`, ...
after the time (`backup_20261130_155743-2.tar.gz`), so names still sort by time
and the seed's layout stays recognisable. Which number a run gets is decided when
its archive is opened (pipeline/run.py): the database refuses a name that another
run holds, and the destination refuses a name it already stores.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
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
    prefix: str,
    slug: str,
    started_at: datetime,
    archive_format: str,
    encrypted: bool = False,
    sequence: int = 1,
) -> str:
    """The object key of a backup started at `started_at` (an aware datetime).

    An age-encrypted archive gets ENCRYPTED_SUFFIX after the format's extension;
    `sequence` above 1 names the second, third, ... archive of one job in one second.
    """
    if sequence < 1:
        raise ValueError("an archive's sequence number starts at 1")
    when = started_at.astimezone(UTC)
    extension = ARCHIVE_FORMATS[archive_format]
    number = f"-{sequence}" if sequence > 1 else ""
    return (
        f"{normalize_prefix(prefix)}{slug}/{when:%Y}/{when:%m}/"
        f"backup_{when:%Y%m%d_%H%M%S}{number}.{extension}{ENCRYPTED_SUFFIX if encrypted else ''}"
    )


def manifest_key(archive: str) -> str:
    return archive + MANIFEST_SUFFIX


@dataclass(frozen=True)
class ArchiveName:
    """What an archive's file name says: its second, number, format and encryption."""

    started_second: datetime
    sequence: int
    archive_format: str
    encrypted: bool


_NAME = re.compile(
    r"backup_(?P<time>\d{8}_\d{6})(?:-(?P<sequence>[1-9]\d{0,5}))?"
    r"\.(?P<extension>" + "|".join(re.escape(e) for e in ARCHIVE_FORMATS.values()) + r")"
    r"(?P<age>" + re.escape(ENCRYPTED_SUFFIX) + r")?"
)


def parse_archive_name(name: str) -> ArchiveName | None:
    """The parts of a file name that `archive_key` made, or None for any other name."""
    match = _NAME.fullmatch(name)
    if match is None or match["sequence"] == "1":
        return None
    try:
        second = datetime.strptime(match["time"], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    formats = {extension: name for name, extension in ARCHIVE_FORMATS.items()}
    return ArchiveName(
        started_second=second,
        sequence=int(match["sequence"] or 1),
        archive_format=formats[match["extension"]],
        encrypted=match["age"] is not None,
    )
