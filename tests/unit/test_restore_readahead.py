"""The read-ahead chain lowers the interpreter's switch interval while it runs
(restore/readahead.py, issue 21), and gives the caller's value back after."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest

from mackuper.restore.readahead import SWITCH_INTERVAL, read_ahead_chain, staged


@pytest.fixture
def interval() -> Iterator[float]:
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield 0.005
    sys.setswitchinterval(saved)


def test_the_chain_lowers_the_switch_interval_and_restores_it(interval: float) -> None:
    data = bytes(range(256)) * 8192
    with read_ahead_chain() as chain:
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        with read_ahead_chain() as inner:  # two restores at once share the lowered value
            assert staged(io.BytesIO(b"x"), "inner", inner).read() == b"x"
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        assert staged(io.BytesIO(data), "test", chain).read() == data
    assert sys.getswitchinterval() == pytest.approx(interval)


def test_an_error_in_the_chain_restores_it_too(interval: float) -> None:
    with pytest.raises(RuntimeError), read_ahead_chain():
        raise RuntimeError("a restore failed")
    assert sys.getswitchinterval() == pytest.approx(interval)
