"""ResilientLimitStore: a failing shared store hands decisions to process memory at once, no request
waits on it while it is down, and a background probe hands decisions back when it answers again."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from polyroute.limits.memory_store import MemoryLimitStore
from polyroute.limits.resilient_store import ResilientLimitStore
from polyroute.limits.rules import US_PER_S, Rule, Verdict
from polyroute.limits.store import LimitStoreUnavailable

T0 = 1_700_000_000 * US_PER_S
RULE = Rule("k:x:rpm", "gcra", 2, 60 * US_PER_S, "key-requests-per-min")


class Flaky:
    """A primary store that can be switched off; counts what it was asked."""

    def __init__(self) -> None:
        self.up = True
        self.inner = MemoryLimitStore()
        self.decisions = 0
        self.adjusts = 0
        self.pings = 0

    def _check(self) -> None:
        if not self.up:
            raise LimitStoreUnavailable("Connection refused")

    async def decide(self, rules: Sequence[Rule], now_us: int) -> Verdict:
        self.decisions += 1
        self._check()
        return self.inner.decide_now(rules, now_us)

    async def adjust(self, rules: Sequence[Rule], units: int, now_us: int) -> None:
        self.adjusts += 1
        self._check()
        self.inner.adjust_now(rules, units, now_us)

    async def ping(self) -> None:
        self.pings += 1
        self._check()

    async def aclose(self) -> None:
        pass


async def test_a_failure_is_answered_from_memory_and_later_requests_never_touch_the_primary() -> None:
    primary = Flaky()
    store = ResilientLimitStore(primary, retry_after_s=0.01)
    assert (await store.decide([RULE], T0)).allowed
    primary.up = False
    assert (await store.decide([RULE], T0)).allowed  # the failing call itself is answered (from memory)
    assert store.degraded and primary.decisions == 2
    verdicts = [await store.decide([RULE], T0) for _ in range(5)]
    await store.adjust([RULE], -1, T0)
    assert primary.decisions == 2 and primary.adjusts == 0  # nobody waited on the dead store
    assert [v.allowed for v in verdicts] == [True, False, False, False, False]  # memory limits hold
    await asyncio.sleep(0.05)
    assert primary.pings >= 2 and store.degraded  # probed in the background, still down
    await store.aclose()


async def test_the_probe_hands_decisions_back_when_the_primary_answers() -> None:
    primary = Flaky()
    store = ResilientLimitStore(primary, retry_after_s=0.01)
    primary.up = False
    await store.decide([RULE], T0)
    primary.up = True
    for _ in range(100):
        if not store.degraded:
            break
        await asyncio.sleep(0.01)
    assert not store.degraded
    before = primary.decisions
    await store.decide([RULE], T0)
    assert primary.decisions == before + 1
    await store.aclose()


async def test_a_failed_adjust_degrades_too() -> None:
    primary = Flaky()
    store = ResilientLimitStore(primary, retry_after_s=10)
    primary.up = False
    await store.adjust([RULE], 5, T0)
    assert store.degraded
    await store.aclose()  # cancels the probe
