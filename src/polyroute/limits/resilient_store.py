"""Redis when it answers, this process's memory when it does not (the documented fail-open mode).

While Redis is down every decision is made by a per-process `MemoryLimitStore`, so limits hold per
process (N processes admit up to N times the limit). The request that meets the failure is decided
in memory at once. From then on no request waits on Redis: a background probe asks it every
`retry_after_s` and hands decisions back to it once it answers, so recovery needs no restart and a
dead or unreachable Redis adds no latency (not even one connect timeout per interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from contextvars import Context
from typing import Protocol

from polyroute.limits.memory_store import MemoryLimitStore
from polyroute.limits.rules import Rule, Verdict
from polyroute.limits.store import LimitStore, LimitStoreUnavailable

log = logging.getLogger(__name__)


class ProbedStore(LimitStore, Protocol):
    async def ping(self) -> None:
        """Return when the store answers; raise LimitStoreUnavailable when it does not."""


class ResilientLimitStore:
    def __init__(
        self, primary: ProbedStore, fallback: MemoryLimitStore | None = None, retry_after_s: float = 1.0
    ) -> None:
        self._primary = primary
        self._fallback = fallback or MemoryLimitStore()
        self._retry_after_s = retry_after_s
        self._down = False
        self._probe: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        return self._down

    async def decide(self, rules: Sequence[Rule], now_us: int) -> Verdict:
        if self._down:
            return self._fallback.decide_now(rules, now_us)
        try:
            return await self._primary.decide(rules, now_us)
        except LimitStoreUnavailable as exc:
            self._went_down(exc)
            return self._fallback.decide_now(rules, now_us)

    async def adjust(self, rules: Sequence[Rule], units: int, now_us: int) -> None:
        if self._down:
            self._fallback.adjust_now(rules, units, now_us)
            return
        try:
            await self._primary.adjust(rules, units, now_us)
        except LimitStoreUnavailable as exc:
            self._went_down(exc)
            self._fallback.adjust_now(rules, units, now_us)

    def _went_down(self, exc: Exception) -> None:
        if self._down:
            return
        log.warning("rate-limit store unavailable (%s): limiting per process until it returns", exc)
        self._down = True
        if self._probe is None or self._probe.done():
            # A fresh context: the probe outlives the request that started it (and must not log its id).
            probe = self._wait_for_primary()
            self._probe = asyncio.get_running_loop().create_task(probe, name="limit-store-probe", context=Context())

    async def _wait_for_primary(self) -> None:
        while True:
            await asyncio.sleep(self._retry_after_s)
            try:
                await self._primary.ping()
            except LimitStoreUnavailable:
                continue
            except Exception:  # never let the probe die silently: the process would stay degraded
                log.exception("rate-limit store probe failed unexpectedly; probing again")
                continue
            log.warning("rate-limit store is back: limits are shared across processes again")
            self._down = False
            return

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self._primary.aclose()
        await self._fallback.aclose()
