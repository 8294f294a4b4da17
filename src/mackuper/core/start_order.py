"""The order containers start in: each after the services it depends on (Compose's
`depends_on`), so they stop in the reverse order. Pure: names in, names out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def start_order(depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """Every name of `depends_on` once, each after the names it depends on.

    Names depended on that are not keys (services not being stopped) are ignored.
    Among names free to go, the alphabetically first goes first, so the order is
    stable. A dependency cycle (which Compose refuses) cannot be honoured: its names
    follow in alphabetical order.
    """
    waiting = {
        name: {other for other in depends_on[name] if other in depends_on and other != name}
        for name in depends_on
    }
    order: list[str] = []
    while waiting:
        free = sorted(name for name, needs in waiting.items() if not needs)
        if not free:
            free = sorted(waiting)[:1]
        chosen = free[0]
        order.append(chosen)
        del waiting[chosen]
        for needs in waiting.values():
            needs.discard(chosen)
    return order
