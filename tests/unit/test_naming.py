from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mackuper.core.globs import is_excluded, validate
from mackuper.core.naming import (
    ArchiveName,
    archive_key,
    manifest_key,
    normalize_prefix,
    parse_archive_name,
    slugify,
)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Home documents", "home-documents"),
        ("Fotos de Élodie & Zoë", "fotos-de-elodie-zoe"),
        ("  --Web//Server--  ", "web-server"),
        ("日本語", "job"),
    ],
)
def test_slugify_makes_storage_safe_names(name: str, slug: str) -> None:
    assert slugify(name) == slug


@pytest.mark.parametrize(
    ("prefix", "normalized"),
    [("", ""), ("/", ""), ("backups", "backups/"), ("/a//b/", "a/b/"), ("./a", "a/")],
)
def test_prefix_is_normalized(prefix: str, normalized: str) -> None:
    assert normalize_prefix(prefix) == normalized


def test_prefix_with_parent_reference_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\.\."):
        normalize_prefix("a/../b")


def test_archive_key_follows_the_layout_in_utc() -> None:
    paris_summer = timezone(timedelta(hours=2))
    started = datetime(2025, 1, 1, 3, 0, 0, tzinfo=paris_summer)
    key = archive_key("backups/", "web", started, "tar.gz")
    assert key == "backups/web/2025/01/backup_20250101_010000.tar.gz"
    assert manifest_key(key) == key + ".manifest.json"
    assert archive_key("", "web", datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), "tar.zst") == (
        "web/2025/12/backup_20251231_235959.tar.zst"
    )


@pytest.mark.parametrize(
    ("path", "patterns", "excluded"),
    [
        ("a/b/c.log", ["*.log"], True),
        ("a/b/c.txt", ["*.log"], False),
        ("node_modules", ["node_modules"], True),
        ("x/node_modules", ["node_modules"], True),
        ("cache/deep/file", ["cache/**"], True),
        ("other/cache/file", ["cache/**"], False),
        ("deep/tmp/x.bin", ["**/tmp/*.bin"], True),
        ("tmp/x.bin", ["**/tmp/*.bin"], True),
        ("tmp/sub/x.bin", ["**/tmp/*.bin"], False),
        ("a/file1", ["a/file[0-9]"], True),
        ("a/filex", ["a/file[!0-9]"], True),
    ],
)
def test_exclude_globs(path: str, patterns: list[str], excluded: bool) -> None:
    assert is_excluded(path, patterns) is excluded


def test_empty_exclude_pattern_is_reported() -> None:
    assert validate("  ") == "an exclude pattern is empty"
    assert validate("*.log") is None


def test_later_archives_of_one_second_are_numbered_after_the_time() -> None:
    second = datetime(2026, 11, 30, 15, 57, 43, tzinfo=UTC)
    names = [archive_key("", "web", second, "tar.zst", True, sequence) for sequence in (1, 2, 10)]
    assert names == [
        "web/2026/11/backup_20261130_155743.tar.zst.age",
        "web/2026/11/backup_20261130_155743-2.tar.zst.age",
        "web/2026/11/backup_20261130_155743-10.tar.zst.age",
    ]
    with pytest.raises(ValueError, match="starts at 1"):
        archive_key("", "web", second, "tar", sequence=0)


@pytest.mark.parametrize("archive_format", ["tar", "tar.gz", "tar.zst", "zip"])
@pytest.mark.parametrize("sequence", [1, 2, 37])
@pytest.mark.parametrize("encrypted", [False, True])
def test_parse_archive_name_reads_back_what_archive_key_wrote(
    archive_format: str, sequence: int, encrypted: bool
) -> None:
    second = datetime(2026, 2, 28, 23, 59, 58, tzinfo=UTC)
    key = archive_key("p/", "job", second, archive_format, encrypted, sequence)
    parsed = parse_archive_name(key.rsplit("/", 1)[-1])
    assert parsed == ArchiveName(second, sequence, archive_format, encrypted)


@pytest.mark.parametrize(
    "name",
    [
        "backup_20261130_155743-1.tar",  # the first of a second has no number
        "backup_20261130_155743-0.tar",
        "backup_20261130_155743.rar",
        "backup_20261332_155743.tar",  # no 32nd of a 13th month
        "backup_20261130_155743.tar.gz.age.age",
        "xbackup_20261130_155743.tar",
        "backup_20261130_155743.tar.manifest.json",
    ],
)
def test_parse_archive_name_refuses_names_mackuper_never_writes(name: str) -> None:
    assert parse_archive_name(name) is None
