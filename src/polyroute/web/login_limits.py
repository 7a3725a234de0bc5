"""Sign-in rate limiting: failed attempts per email and per client address, in the limits store.

With Redis configured the counts live there (the same store as the API's rate limits), so every
worker and every host shares one budget; without Redis they are in this process's memory (with
N workers, N budgets; docs/web.md). If Redis stops answering, the store falls back to memory per
process until it returns, as the API's limits do.

Each subject is a GCRA bucket: `FAILURES_PER_EMAIL` failures in a burst, then one more every
window/budget (3 minutes for 5 per 15 minutes). An attempt is first *checked* without spending
anything (a rule one unit smaller with the same emission interval, cost 0: it refuses exactly when
the bucket is full), then a failure is *recorded* (cost 1). A success does not refund: earlier
failures drain with time. Email and address are stored hashed.
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

    def rules(self, subject: str) -> tuple[Rule, Rule]:
        """(check, record): the same bucket, same emission interval; the check refuses once it is full."""
        interval_us = WINDOW_S * US_PER_S // self.failures
        digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:32]
        key, name = f"login:{self.kind}:{digest}", f"sign-in-failures-per-{self.kind}"
        check = Rule(key, "gcra", self.failures - 1, interval_us * (self.failures - 1), name, cost=0)
        record = Rule(key, "gcra", self.failures, interval_us * self.failures, name, cost=1)
        return check, record


EMAIL = _Budget("e", FAILURES_PER_EMAIL)
ADDRESS = _Budget("a", FAILURES_PER_ADDRESS)


class LoginLimiter:
    def __init__(self, store: LimitStore, clock: Callable[[], int] = wall_clock_us) -> None:
        self._store = store
        self._clock = clock

    async def retry_after_s(self, email: str, address: str) -> int:
        """0 when an attempt may go ahead, else the seconds until one more failure would be counted."""
        checks = [EMAIL.rules(email)[0], ADDRESS.rules(address)[0]]
        verdict = await self._store.decide(checks, self._clock())
        return 0 if verdict.allowed else max(1, math.ceil(verdict.retry_after_us / US_PER_S))

    async def failed(self, email: str, address: str) -> None:
        await self._store.decide([EMAIL.rules(email)[1], ADDRESS.rules(address)[1]], self._clock())

    async def aclose(self) -> None:
        await self._store.aclose()
