"""Sign-in rate limiting: failed attempts per email and per client address, in the limits store.

With Redis configured the counts live there (the same store as the API's rate limits), so every
worker and every host shares one budget; without Redis they are in this process's memory (with
N workers, N budgets; docs/web.md). If Redis stops answering, the store falls back to memory per
process until it returns, as the API's limits do.

Each subject is a GCRA bucket: `FAILURES_PER_EMAIL` failures in a burst, then one more every
window/budget (3 minutes for 5 per 15 minutes). Every attempt first takes a slot in both buckets in
one atomic decision (so attempts racing in parallel, on any process, can never overshoot the
budget), and a successful sign-in gives its slot back: only failures stay counted, and they drain
with time. Email and address are stored hashed.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from polyroute.limits.rules import US_PER_S, Rule
from polyroute.limits.store import LimitStore

FAILURES_PER_EMAIL = 5
FAILURES_PER_ADDRESS = 20
WINDOW_S = 15 * 60


def wall_clock_us() -> int:
    return time.time_ns() // 1000  # every process must agree on "now" (NTP), as for the API's limits


@dataclass(frozen=True, slots=True)
class _Budget:
    kind: str  # "e" (email) or "a" (address)
    failures: int

    def rule(self, subject: str) -> Rule:
        digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:32]
        period_us = WINDOW_S * US_PER_S
        return Rule(
            f"login:{self.kind}:{digest}", "gcra", self.failures, period_us, f"sign-in-failures-per-{self.kind}"
        )


EMAIL = _Budget("e", FAILURES_PER_EMAIL)
ADDRESS = _Budget("a", FAILURES_PER_ADDRESS)


class LoginLimiter:
    def __init__(self, store: LimitStore, clock: Callable[[], int] = wall_clock_us) -> None:
        self._store = store
        self._clock = clock

    @staticmethod
    def _rules(email: str, address: str) -> list[Rule]:
        return [EMAIL.rule(email), ADDRESS.rule(address)]

    async def attempt(self, email: str, address: str) -> int:
        """0: go ahead (a failure slot is taken, see `succeeded`); else the seconds until one frees."""
        verdict = await self._store.decide(self._rules(email, address), self._clock())
        return 0 if verdict.allowed else max(1, math.ceil(verdict.retry_after_us / US_PER_S))

    async def succeeded(self, email: str, address: str) -> None:
        """The password was right: give the attempt's slot back."""
        await self._store.adjust(self._rules(email, address), -1, self._clock())

    async def aclose(self) -> None:
        await self._store.aclose()
