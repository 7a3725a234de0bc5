"""GCRA and fixed-window arithmetic under an injected clock (target R1)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.limits.memory_store import MemoryLimitStore
from polyroute.limits.rules import DAY_US, US_PER_S, Rule, decide

MINUTE_US = 60 * US_PER_S
T0 = 1_700_000_000 * US_PER_S


def rpm(limit: int, key: str = "k") -> Rule:
    return Rule(key, "gcra", limit, MINUTE_US, "key-requests-per-min")


def test_a_burst_admits_exactly_the_limit_then_one_per_interval() -> None:
    store = MemoryLimitStore()
    rule = rpm(10)
    admitted = [store.decide_now([rule], T0).allowed for _ in range(200)]
    assert admitted.count(True) == 10 and admitted[:10] == [True] * 10
    refused = store.decide_now([rule], T0)
    assert refused.retry_after_us == 6 * US_PER_S and refused.remaining == 0
    assert not store.decide_now([rule], T0 + 6 * US_PER_S - 1).allowed
    assert store.decide_now([rule], T0 + 6 * US_PER_S).allowed


def test_remaining_counts_down_the_burst() -> None:
    store = MemoryLimitStore()
    remaining = [store.decide_now([rpm(3)], T0).remaining for _ in range(3)]
    assert remaining == [2, 1, 0]


def test_a_refusal_by_one_rule_changes_no_other_rule() -> None:
    store = MemoryLimitStore()
    minute = rpm(5, "a:1:free:rpm")
    day = Rule("a:1:free:rpd", "window", 2, DAY_US, "free-models-per-day")
    results = [store.decide_now([minute, day], T0) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, False, False]
    assert results[2].rule == day
    # The per-minute rule was not charged by the refused requests: 3 of its 5 remain.
    assert [store.decide_now([minute], T0).allowed for _ in range(4)] == [True, True, True, False]


def test_the_daily_window_resets_at_utc_midnight() -> None:
    store = MemoryLimitStore()
    day = Rule("a:1:free:rpd", "window", 1, DAY_US, "free-models-per-day")
    midnight = (T0 // DAY_US + 1) * DAY_US
    assert store.decide_now([day], midnight - 10).allowed
    refused = store.decide_now([day], midnight - 10)
    assert not refused.allowed and refused.retry_after_us == 10
    assert store.decide_now([day], midnight).allowed


def test_token_costs_use_up_the_rate_by_weight() -> None:
    store = MemoryLimitStore()
    tpm = Rule("k:tpm", "gcra", 1000, MINUTE_US, "key-tokens-per-min", cost=600)
    assert store.decide_now([tpm], T0).allowed
    assert not store.decide_now([tpm], T0).allowed  # 1200 > 1000


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=30),
    gaps_ms=st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=400),
)
def test_no_sliding_window_ever_admits_more_than_limit_plus_what_the_rate_refills(
    limit: int, gaps_ms: list[int]
) -> None:
    """R1: in any window of length W, admitted <= limit + W / interval; Retry-After is never early."""
    store = MemoryLimitStore()
    rule = rpm(limit)
    now = T0
    admitted: list[int] = []
    for gap in gaps_ms:
        now += gap * 1000
        verdict = store.decide_now([rule], now)
        if verdict.allowed:
            admitted.append(now)
        else:
            assert verdict.retry_after_us > 0
            assert not store.decide_now([rule], now + verdict.retry_after_us - 1).allowed
            # put it back: the probe above must not count (it was refused, so state is unchanged)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            span = admitted[j] - start
            assert j - i + 1 <= limit + span // rule.interval_us


def test_decide_reports_the_tightest_admitting_rule() -> None:
    loose, tight = rpm(100, "a"), rpm(2, "b")
    verdict, states = decide([None, None], T0, [loose, tight])
    assert verdict.allowed and verdict.rule == tight and verdict.remaining == 1 and states is not None
