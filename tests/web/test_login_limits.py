"""The sign-in limiter's arithmetic on the memory store under an injected clock (pure, fast)."""

from __future__ import annotations

import asyncio

from polyroute.limits.memory_store import MemoryLimitStore
from polyroute.limits.rules import US_PER_S
from polyroute.web.login_limits import FAILURES_PER_ADDRESS, FAILURES_PER_EMAIL, WINDOW_S, LoginLimiter


class Clock:
    def __init__(self) -> None:
        self.now_us = 1_700_000_000 * US_PER_S

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * US_PER_S)


def test_the_email_budget_then_one_more_per_interval() -> None:
    async def run() -> None:
        clock = Clock()
        limiter = LoginLimiter(MemoryLimitStore(), clock)
        for _ in range(FAILURES_PER_EMAIL):
            assert await limiter.attempt("a@example.com", "10.0.0.1") == 0  # (and it fails)
        interval_s = WINDOW_S // FAILURES_PER_EMAIL
        assert await limiter.attempt("a@example.com", "10.0.0.2") == interval_s  # from any address
        assert await limiter.attempt("b@example.com", "10.0.0.1") == 0  # another email
        clock.advance(interval_s - 1)
        assert await limiter.attempt("a@example.com", "10.0.0.1") == 1
        clock.advance(1)
        assert await limiter.attempt("a@example.com", "10.0.0.1") == 0  # one slot drained, now used again
        assert await limiter.attempt("a@example.com", "10.0.0.1") == interval_s
        clock.advance(WINDOW_S)
        assert await limiter.attempt("a@example.com", "10.0.0.1") == 0  # all drained

    asyncio.run(run())


def test_successful_sign_ins_give_their_slot_back() -> None:
    async def run() -> None:
        limiter = LoginLimiter(MemoryLimitStore(), Clock())
        for _ in range(3 * FAILURES_PER_EMAIL):
            assert await limiter.attempt("ok@example.com", "10.0.0.3") == 0
            await limiter.succeeded("ok@example.com", "10.0.0.3")
        for _ in range(FAILURES_PER_EMAIL):  # the whole failure budget is still there
            assert await limiter.attempt("ok@example.com", "10.0.0.3") == 0
        assert await limiter.attempt("ok@example.com", "10.0.0.3") > 0

    asyncio.run(run())


def test_the_address_budget_counts_every_email_and_two_limiters_on_one_store_share_it() -> None:
    async def run() -> None:
        store, clock = MemoryLimitStore(), Clock()
        first, second = LoginLimiter(store, clock), LoginLimiter(store, clock)  # like two processes on Redis
        for i in range(FAILURES_PER_ADDRESS):
            assert await (first if i % 2 else second).attempt(f"u{i}@example.com", "10.0.0.9") == 0
        assert await first.attempt("new@example.com", "10.0.0.9") > 0
        assert await second.attempt("new@example.com", "10.0.0.9") > 0
        assert await second.attempt("new@example.com", "10.0.0.10") == 0

    asyncio.run(run())
