"""Sign-in rate limiting: failed attempts per email and per client address in a sliding window.

Process-local (each worker counts its own); with N workers an attacker gets at most N times the budget.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

FAILURES_PER_EMAIL = 5
FAILURES_PER_ADDRESS = 20
WINDOW_S = 15 * 60.0
_MAX_TRACKED = 50_000


class LoginLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, name: str) -> deque[float]:
        now = self._clock()
        found = self._failures.get(name)
        if found is None:
            return deque()
        while found and found[0] <= now - WINDOW_S:
            found.popleft()
        return found

    def retry_after_s(self, email: str, address: str) -> int:
        """0 when an attempt may go ahead, else the seconds until the oldest counted failure expires."""
        waits = []
        for name, budget in ((f"e:{email}", FAILURES_PER_EMAIL), (f"a:{address}", FAILURES_PER_ADDRESS)):
            recent = self._recent(name)
            if len(recent) >= budget:
                waits.append(int(recent[0] + WINDOW_S - self._clock()) + 1)
        return max(waits, default=0)

    def failed(self, email: str, address: str) -> None:
        if len(self._failures) > _MAX_TRACKED:
            self._failures.clear()  # bounded memory under a flood of distinct names
        now = self._clock()
        for name in (f"e:{email}", f"a:{address}"):
            self._failures.setdefault(name, deque()).append(now)

    def succeeded(self, email: str) -> None:
        self._failures.pop(f"e:{email}", None)
