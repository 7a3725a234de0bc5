"""Redis when it answers, this process's memory when it does not (the documented fail-open mode).

While Redis is down every decision is made by a per-process `MemoryLimitStore`, so limits hold per
process (N processes admit up to N times the limit). After a failure Redis is not asked again for
`retry_after_s`, so a dead Redis costs one short timeout per interval rather than one per request;
the first decision after that interval tries Redis again, and recovery needs no restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from polyroute.limits.memory_store import MemoryLimitStore
from polyroute.limits.rules import Rule, Verdict
from polyroute.limits.store import LimitStore, LimitStoreUnavailable

log = logging.getLogger(__name__)


class ResilientLimitStore:
    def __init__(
        self,
        primary: LimitStore,
        fallback: MemoryLimitStore | None = None,
        retry_after_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._fallback = fallback or MemoryLimitStore()
        self._retry_after_s = retry_after_s
        self._monotonic = monotonic
        self._down_until: float | None = None

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    async def decide(self, rules: Sequence[Rule], now_us: int) -> Verdict:
        if self._down_until is not None and self._monotonic() < self._down_until:
            return self._fallback.decide_now(rules, now_us)
        try:
            verdict = await self._primary.decide(rules, now_us)
        except LimitStoreUnavailable as exc:
            if self._down_until is None:
                log.warning("rate-limit store unavailable (%s): limiting per process until it returns", exc)
            self._down_until = self._monotonic() + self._retry_after_s
            return self._fallback.decide_now(rules, now_us)
        if self._down_until is not None:
            log.warning("rate-limit store is back: limits are shared across processes again")
            self._down_until = None
        return verdict

    async def adjust(self, rules: Sequence[Rule], units: int, now_us: int) -> None:
        if self._down_until is not None and self._monotonic() < self._down_until:
            self._fallback.adjust_now(rules, units, now_us)
            return
        try:
            await self._primary.adjust(rules, units, now_us)
        except LimitStoreUnavailable:
            self._down_until = self._monotonic() + self._retry_after_s
            self._fallback.adjust_now(rules, units, now_us)

    async def aclose(self) -> None:
        await self._primary.aclose()
        await self._fallback.aclose()
