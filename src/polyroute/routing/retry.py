"""When to try an endpoint again: the per-request attempt budget, full-jitter backoff, Retry-After,
and a process-wide retry budget that keeps retries a small fraction of traffic (no retry storms).

Pure apart from the injected random source; the relay does the waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4  # upstream calls per request, failovers and retries together
    base_backoff_s: float = 0.25  # full jitter: uniform(0, min(cap, base * 2**round))
    max_backoff_s: float = 4.0
    max_wait_s: float = 10.0  # a Retry-After longer than this is passed to the client instead
    budget_ratio: float = 0.2  # retries earned per request (Envoy/Finagle-style retry budget)
    budget_cap: float = 10.0  # most retries that can be banked


def backoff_s(policy: RetryPolicy, round_: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry round `round_` (1-based)."""
    ceiling = min(policy.max_backoff_s, policy.base_backoff_s * 2 ** max(0, round_ - 1))
    return rng.uniform(0.0, ceiling)


def retry_wait_s(policy: RetryPolicy, round_: int, retry_after_s: float | None, rng: random.Random) -> float | None:
    """How long to wait before retrying; None when the upstream asked for longer than we may wait."""
    wait = backoff_s(policy, round_, rng)
    if retry_after_s is not None:
        if retry_after_s > policy.max_wait_s:
            return None
        wait = max(wait, retry_after_s)
    return wait


class RetryBudget:
    """A token bucket: every request deposits `budget_ratio`, every same-endpoint retry takes one."""

    __slots__ = ("_cap", "_ratio", "tokens")

    def __init__(self, policy: RetryPolicy) -> None:
        self._ratio = policy.budget_ratio
        self._cap = policy.budget_cap
        self.tokens = policy.budget_cap

    def deposit(self) -> None:
        self.tokens = min(self._cap, self.tokens + self._ratio)

    def withdraw(self) -> bool:
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
