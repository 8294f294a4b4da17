"""S3 part sizes (destinations/s3.part_size_for): the README promises that the part
size grows with the upload so that even a 5 TiB archive fits in S3's 10,000 parts,
with every part inside S3's limits (5 MiB to 5 GiB; the last part may be smaller)."""

from __future__ import annotations

import pytest

from mackuper.destinations.s3 import (
    DEFAULT_PART_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    part_size_for,
)

GIB = 1024**3
TIB = 1024**4


def _parts(size: int, base: int = DEFAULT_PART_SIZE) -> list[int]:
    """The sizes of the parts an upload of `size` bytes is cut into."""
    parts: list[int] = []
    left = size
    while left > 0:
        part = part_size_for(len(parts) + 1, base)
        parts.append(min(part, left))
        left -= part
    return parts


def test_s3_limits_are_the_documented_ones() -> None:
    assert (MIN_PART_SIZE, MAX_PART_SIZE, MAX_PARTS) == (5 * 1024**2, 5 * GIB, 10_000)
    assert MAX_OBJECT_SIZE == 5 * TIB


@pytest.mark.parametrize("size", [GIB, TIB, MAX_OBJECT_SIZE], ids=["1GiB", "1TiB", "5TiB"])
def test_an_archive_up_to_5_tib_fits_in_10000_parts_within_s3_part_limits(size: int) -> None:
    parts = _parts(size)

    assert sum(parts) == size
    assert len(parts) <= MAX_PARTS
    assert all(MIN_PART_SIZE <= part <= MAX_PART_SIZE for part in parts[:-1])
    assert 0 < parts[-1] <= MAX_PART_SIZE
    assert parts[:-1] == sorted(parts[:-1])  # sizes only grow: memory follows the archive
