"""The C-speed sum of a tar header block agrees with Python's sum() on any block."""

from __future__ import annotations

import random
import tarfile

import pytest

from mackuper.core.tarblock import header_sum


@pytest.mark.parametrize(
    "block",
    [
        bytes(512),
        b"\xff" * 512,  # the largest sum: each half at its most (65,280)
        b"\x7f" * 256 + b"\xff" * 256,
        random.Random(1).randbytes(512),
        tarfile.TarInfo("a" * 100).tobuf(tarfile.USTAR_FORMAT),
    ],
    ids=["zeros", "all-ff", "halves", "random", "tarfile-header"],
)
def test_the_sum_is_the_plain_byte_sum(block: bytes) -> None:
    assert header_sum(block) == sum(block)


def test_many_random_blocks() -> None:
    rng = random.Random(23)
    for _ in range(2000):
        block = rng.randbytes(512)
        assert header_sum(block) == sum(block)
