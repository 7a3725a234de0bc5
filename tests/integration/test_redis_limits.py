"""The Redis Lua limiter against the in-memory one: same answers for the same arrivals (real Redis)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from tests.support.redis_server import delete_prefix, shared_redis_url, unique_prefix

from polyroute.limits.memory_store import MemoryLimitStore
from polyroute.limits.redis_store import RedisLimitStore
from polyroute.limits.rules import DAY_US, US_PER_S, Rule

MINUTE_US = 60 * US_PER_S
T0 = 1_700_000_000 * US_PER_S + 123_457


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisLimitStore]:
    url = shared_redis_url()
    prefix = unique_prefix()
    store = RedisLimitStore.from_url(url, prefix=prefix)
    try:
        yield store
    finally:
        await store.aclose()
        delete_prefix(url, prefix)


async def test_lua_and_memory_decide_identically_over_random_arrivals(redis_store: RedisLimitStore) -> None:
    memory = MemoryLimitStore()
    rng = random.Random(7)
    rules = [
        Rule("a:1:free:rpm", "gcra", 7, MINUTE_US, "free-models-per-min"),
        Rule("a:1:free:rpd", "window", 25, DAY_US, "free-models-per-day"),
    ]
    now = T0
    for _ in range(600):
        now += rng.choice([0, 0, 1_000, 500_000, 3 * US_PER_S, 9 * US_PER_S, 4 * 3600 * US_PER_S])
        cost_rule = Rule("k:tpm", "gcra", 1000, MINUTE_US, "key-tokens-per-min", cost=rng.randint(0, 400))
        chosen = [*rules, cost_rule] if rng.random() < 0.3 else rules
        assert await redis_store.decide(chosen, now) == memory.decide_now(chosen, now)


async def test_concurrent_decisions_admit_exactly_the_limit(redis_store: RedisLimitStore) -> None:
    rule = Rule("k:burst:rpm", "gcra", 10, MINUTE_US, "key-requests-per-min")
    verdicts = await asyncio.gather(*(redis_store.decide([rule], T0) for _ in range(200)))
    assert sum(v.allowed for v in verdicts) == 10


async def test_lua_and_memory_adjust_identically(redis_store: RedisLimitStore) -> None:
    """The tokens-per-minute correction (charge or refund) gives the same later decisions in both stores."""
    memory = MemoryLimitStore()
    rng = random.Random(11)
    now = T0
    for _ in range(400):
        now += rng.choice([0, 1_000, 200_000, 2 * US_PER_S, 20 * US_PER_S])
        rule = Rule("k:adj:tpm", "gcra", 1000, MINUTE_US, "key-tokens-per-min", cost=rng.randint(0, 300))
        verdict = await redis_store.decide([rule], now)
        assert verdict == memory.decide_now([rule], now)
        if verdict.allowed and rng.random() < 0.7:
            units = rng.randint(-300, 300)
            await redis_store.adjust([rule], units, now)
            memory.adjust_now([rule], units, now)


async def test_a_decision_stamped_before_one_already_made_still_fills_the_limit_exactly(
    redis_store: RedisLimitStore,
) -> None:
    """Callers stamp their time before the round trip, so Redis sees decisions slightly out of order:
    the 10th request of a burst on a 10/min key, stamped 1 ms before the 9th, is still admitted (once)."""
    rule = Rule("k:skew:rpm", "gcra", 10, MINUTE_US, "key-requests-per-min")
    early = [await redis_store.decide([rule], T0 + 1_000) for _ in range(9)]
    late_stamped = await redis_store.decide([rule], T0)
    over = await redis_store.decide([rule], T0)
    assert all(v.allowed for v in early) and late_stamped.allowed and not over.allowed
    assert over.retry_after_us > 0
