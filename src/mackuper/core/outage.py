"""How long and how often a transient outage (storage or SSH) is retried.

A short outage should not fail a backup that has already streamed gigabytes: a
request that fails for a reason that may pass (refused or reset connection,
timeout, 5xx, throttling) is tried again after 1, 2, 4, ... seconds (at most
`MAX_DELAY` apart) until `budget` seconds have passed since its first failure
(MACKUPER_RETRY_SECONDS, 5 minutes by default). The clock and the wait are
injected so the schedule is a pure decision.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BASE_DELAY = 1.0
MAX_DELAY = 30.0
DEFAULT_BUDGET = 300.0


def retry_delay(attempt: int, base: float = BASE_DELAY) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): 1, 2, 4, ... up to 30."""
    return min(MAX_DELAY, base * (1 << min(attempt - 1, 30)))


@dataclass
class Outage:
    """One run of failures of one request; `pause` says whether to try again.

    `pause` waits (on `stop` when given, so a cancelled run does not sleep on) and
    returns True while the budget allows another attempt, False once `budget`
    seconds have passed since the first failure, or `stop` is set.
    """

    budget: float
    stop: threading.Event | None = None
    clock: Callable[[], float] = time.monotonic
    attempts: int = 0
    started: float | None = field(default=None)

    def pause(self) -> bool:
        now = self.clock()
        if self.started is None:
            self.started = now
        self.attempts += 1
        # The last pause is cut short so one more attempt comes at the budget's end.
        delay = min(retry_delay(self.attempts), self.started + self.budget - now)
        if delay <= 0 or self._stopped():
            return False
        if self.stop is not None:
            return not self.stop.wait(delay)
        time.sleep(delay)
        return True

    def elapsed(self) -> float:
        return 0.0 if self.started is None else self.clock() - self.started

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()
