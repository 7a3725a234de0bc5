"""What a limit store does: decide a set of rules atomically at a given time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from polyroute.limits.rules import Rule, Verdict


class LimitStore(Protocol):
    async def decide(self, rules: Sequence[Rule], now_us: int) -> Verdict: ...

    async def adjust(self, rules: Sequence[Rule], units: int, now_us: int) -> None:
        """Charge (> 0) or refund (< 0) `units` on GCRA `rules` already admitted (rules.gcra_adjust)."""

    async def aclose(self) -> None: ...


class LimitStoreUnavailable(Exception):
    """The shared store cannot answer (Redis down or too slow)."""
