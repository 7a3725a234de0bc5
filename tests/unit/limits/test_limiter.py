"""RequestLimiter: a key's own rpm/tpm over the instance defaults, and the tokens-per-minute correction
after the response (charge or refund of actual - estimate), all under an injected clock."""

from __future__ import annotations

import pytest

from polyroute.domain.errors import RateLimited
from polyroute.limits.limiter import MINUTE_US, RequestLimiter, Subject
from polyroute.limits.memory_store import MemoryLimitStore
from polyroute.limits.rules import US_PER_S, Rule, gcra_adjust
from polyroute.settings import LimitSettings

T0 = 1_700_000_000 * US_PER_S


class Clock:
    def __init__(self) -> None:
        self.now_us = T0

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * US_PER_S)


def limiter(clock: Clock, **settings: int) -> RequestLimiter:
    return RequestLimiter(MemoryLimitStore(), LimitSettings(**settings), clock)  # type: ignore[arg-type]


async def admitted(limiter: RequestLimiter, subject: Subject, attempts: int) -> int:
    count = 0
    for _ in range(attempts):
        try:
            await limiter.admit(limiter.operator_rules(subject))
        except RateLimited:
            continue
        count += 1
    return count


async def test_a_keys_own_rpm_overrides_the_default_and_none_keeps_it() -> None:
    clock = Clock()
    lim = limiter(clock, key_rpm=5)
    assert await admitted(lim, Subject("default", 1), 50) == 5
    assert await admitted(lim, Subject("own", 1, key_rpm=12), 50) == 12
    assert await admitted(lim, Subject("none", 1, key_rpm=0), 50) == 50  # 0: no limit on this key


async def test_a_keys_own_rpm_applies_without_an_instance_default() -> None:
    lim = limiter(Clock())
    assert await admitted(lim, Subject("own", 1, key_rpm=3), 10) == 3
    assert not lim.has_token_limits() and lim.has_token_limits(100)


def test_request_rules_are_built_once_per_key_and_follow_a_changed_key_rpm() -> None:
    lim = limiter(Clock(), key_rpm=5, account_rpm=9, key_tpm=100)
    first = lim.operator_rules(Subject("k", 1, tokens=7))
    again = lim.operator_rules(Subject("k", 1, tokens=3))
    assert [r.key for r in first] == ["k:k:rpm:5", "a:1:rpm", "k:k:tpm:100"]
    assert first[0] is again[0] and first[1] is again[1]  # the cached request rules
    assert (first[2].cost, again[2].cost) == (7, 3)  # token rules carry each request's estimate
    assert lim.operator_rules(Subject("k", 1, key_rpm=8))[0].key == "k:k:rpm:8"
    assert lim.operator_rules(Subject("k", 2))[1].key == "a:2:rpm"
    for i in range(10_050):  # bounded however many keys come by
        lim.operator_rules(Subject(f"k{i}", 1))
    assert len(lim._rpm_rules) <= 10_000


async def test_a_key_tpm_refuses_with_the_key_tokens_rule_name() -> None:
    lim = limiter(Clock(), key_tpm=1000)
    subject = Subject("k", 1, tokens=600, key_tpm=None)
    await lim.admit(lim.operator_rules(subject))
    with pytest.raises(RateLimited) as refused:
        await lim.admit(lim.operator_rules(subject))
    assert refused.value.message == "Rate limit exceeded: key-tokens-per-min."
    assert refused.value.headers["X-RateLimit-Limit"] == "1000"


async def test_a_refund_readmits_at_once_what_a_short_answer_did_not_use() -> None:
    clock = Clock()
    lim = limiter(clock, key_tpm=1000)
    estimate = Subject("k", 1, tokens=600)  # prompt estimate + max_tokens
    await lim.admit(lim.operator_rules(estimate))
    with pytest.raises(RateLimited):
        await lim.admit(lim.operator_rules(estimate))  # 1200 > 1000 by estimate
    await lim.correct(estimate, actual_tokens=100)  # the answer used 100 of the 600
    await lim.admit(lim.operator_rules(estimate))  # 100 + 600 <= 1000: admitted now, same instant
    await lim.correct(estimate, actual_tokens=600)  # this one used all it asked for
    with pytest.raises(RateLimited) as refused:
        await lim.admit(lim.operator_rules(Subject("k", 1, tokens=400)))  # 700 used, 300 left
    # 100 tokens must drain first: 100 x 60 ms.
    assert refused.value.headers["Retry-After"] == "6"
    await lim.admit(lim.operator_rules(Subject("k", 1, tokens=300)))


async def test_an_overrun_is_charged_and_delays_the_next_request() -> None:
    clock = Clock()
    lim = limiter(clock, key_tpm=1000)
    subject = Subject("k", 1, tokens=100)  # no max_tokens: the estimate was the prompt alone
    await lim.admit(lim.operator_rules(subject))
    await lim.correct(subject, actual_tokens=1100)  # 1000 more than estimated: 1100 in a 1000/min bucket
    with pytest.raises(RateLimited) as refused:
        await lim.admit(lim.operator_rules(Subject("k", 1, tokens=1)))
    # The debt of 100 tokens plus this one must drain: 101 x 60 ms = 6.06 s.
    assert refused.value.headers["Retry-After"] == "7"
    clock.advance(6.06)
    await lim.admit(lim.operator_rules(Subject("k", 1, tokens=1)))


async def test_a_refund_never_gives_more_than_the_full_burst() -> None:
    clock = Clock()
    lim = limiter(clock, key_tpm=1000)
    subject = Subject("k", 1, tokens=500)
    await lim.admit(lim.operator_rules(subject))
    clock.advance(60)  # the bucket is full again before the correction arrives
    await lim.correct(subject, actual_tokens=0)
    await lim.admit(lim.operator_rules(Subject("k", 1, tokens=1000)))
    with pytest.raises(RateLimited):
        await lim.admit(lim.operator_rules(Subject("k", 1, tokens=1)))


async def test_correct_covers_the_account_bucket_too_and_is_a_no_op_when_exact() -> None:
    clock = Clock()
    lim = limiter(clock, account_tpm=1000)
    first = Subject("k1", 7, tokens=800)
    await lim.admit(lim.operator_rules(first))
    await lim.correct(first, actual_tokens=800)
    with pytest.raises(RateLimited) as refused:
        await lim.admit(lim.operator_rules(Subject("k2", 7, tokens=300)))
    assert refused.value.message == "Rate limit exceeded: account-tokens-per-min."
    await lim.correct(first, actual_tokens=200)  # a second correction of the same request refunds 600 more
    await lim.admit(lim.operator_rules(Subject("k2", 7, tokens=300)))


class FailingStore(MemoryLimitStore):
    async def adjust(self, rules: object, units: int, now_us: int) -> None:  # type: ignore[override]
        raise RuntimeError("store gone")


async def test_a_failed_correction_never_raises() -> None:
    lim = RequestLimiter(FailingStore(), LimitSettings(key_tpm=1000), Clock())
    await lim.correct(Subject("k", 1, tokens=10), actual_tokens=500)


def test_gcra_adjust_bounds() -> None:
    rule = Rule("k", "gcra", 1000, MINUTE_US, "key-tokens-per-min")  # 60 ms a token
    assert gcra_adjust(None, T0, rule, 10) == T0 + 600_000
    assert gcra_adjust(T0 + 600_000, T0, rule, -5) == T0 + 300_000
    assert gcra_adjust(T0 + 600_000, T0, rule, -50) is None  # never earlier than now
    assert gcra_adjust(T0 - 5, T0, rule, -1) is None  # an empty bucket has nothing to refund
    assert gcra_adjust(T0 + 600_000, T0, rule, 2000) == T0 + 600_000 + 2000 * 60_000  # no ceiling on debt
