"""Containers start after what they depend on, and stop in the reverse order."""

from __future__ import annotations

import pytest

from mackuper.core.start_order import start_order


@pytest.mark.parametrize(
    ("depends_on", "expected"),
    [
        ({}, []),
        ({"proxy": ["app"], "app": ["db"], "db": []}, ["db", "app", "proxy"]),
        ({"a": ["db"], "b": ["db"], "db": []}, ["db", "a", "b"]),
        # a dependency that is not being stopped is ignored
        ({"app": ["cache", "db"], "db": []}, ["db", "app"]),
        # no dependencies: alphabetical, stable
        ({"zeta": [], "alpha": [], "mid": []}, ["alpha", "mid", "zeta"]),
        # a cycle cannot be honoured: every name still comes once
        ({"a": ["b"], "b": ["a"], "c": []}, ["c", "a", "b"]),
        ({"self": ["self"]}, ["self"]),
    ],
)
def test_start_order_puts_each_container_after_what_it_depends_on(
    depends_on: dict[str, list[str]], expected: list[str]
) -> None:
    assert start_order(depends_on) == expected
