"""Endpoint health: failure window, ejection with growing periods, half-open probes, stats."""

from __future__ import annotations

import random

from polyroute.routing.health import STATS_WINDOW_S, HealthState, MemoryHealth, percentiles
from polyroute.routing.retry import RetryBudget, RetryPolicy, retry_wait_s

KEY = ("a/m", "p")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_degrades_for_30_seconds():
    clock = Clock()
    health = MemoryHealth(clock)
    health.record_failure(KEY)
    assert health.snapshot([KEY]).of(KEY).state is HealthState.DEGRADED
    clock.now += 30.1
    assert health.snapshot([KEY]).of(KEY).state is HealthState.OK


def test_retry_after_keeps_traffic_away_for_its_duration():
    clock = Clock()
    health = MemoryHealth(clock, failure_window_s=1)
    health.record_failure(KEY, retry_after_s=20)
    clock.now += 10
    assert health.snapshot([KEY]).of(KEY).state is HealthState.DEGRADED


def test_repeated_failures_eject_for_a_growing_period_with_one_half_open_probe():
    clock = Clock()
    health = MemoryHealth(clock, eject_after=3, base_ejection_s=30)
    for _ in range(3):
        health.record_failure(KEY)
    assert health.snapshot([KEY]).of(KEY).state is HealthState.EJECTED
    clock.now += 30
    assert health.snapshot([KEY]).of(KEY).state is HealthState.HALF_OPEN
    assert health.claim_probe(KEY) and not health.claim_probe(KEY)
    assert health.snapshot([KEY]).of(KEY).state is HealthState.PROBING
    health.record_failure(KEY)  # the probe failed: ejected again, for twice as long
    clock.now += 59
    assert health.snapshot([KEY]).of(KEY).state is HealthState.EJECTED
    clock.now += 1
    assert health.claim_probe(KEY)
    health.record_success(KEY, ttft_s=0.1, latency_s=1.0, completion_tokens=10)
    assert health.snapshot([KEY]).of(KEY).state is HealthState.OK


def test_stats_report_uptime_ttft_latency_and_throughput():
    clock = Clock()
    health = MemoryHealth(clock)
    for i in range(9):
        health.record_success(KEY, ttft_s=0.1 * (i + 1), latency_s=2.0 + 0.1 * (i + 1), completion_tokens=21)
    health.record_failure(KEY)
    stats = health.all_stats()[KEY]
    assert stats.uptime == 0.9
    assert stats.ttft_s is not None and stats.ttft_s.p50 == 0.5
    assert stats.throughput_tps is not None and stats.throughput_tps.p50 == 10.0
    assert stats.latency_s is not None and stats.latency_s.p99 > stats.latency_s.p50


def test_percentiles_nearest_rank():
    result = percentiles([float(v) for v in range(1, 101)])
    assert result is not None and (result.p50, result.p90, result.p99) == (50, 90, 99)
    assert percentiles([]) is None


def test_full_jitter_backoff_is_bounded_and_retry_after_is_honoured():
    policy = RetryPolicy(base_backoff_s=0.5, max_backoff_s=4, max_wait_s=10)
    rng = random.Random(1)
    waits = [retry_wait_s(policy, 3, None, rng) for _ in range(200)]
    assert all(w is not None and 0 <= w <= 2.0 for w in waits)
    assert retry_wait_s(policy, 1, 5.0, rng) == 5.0
    assert retry_wait_s(policy, 1, 30.0, rng) is None  # longer than we wait: passed to the client


def test_retry_budget_limits_retries_to_a_fraction_of_requests():
    budget = RetryBudget(RetryPolicy(budget_ratio=0.2, budget_cap=1))
    assert budget.withdraw() and not budget.withdraw()
    for _ in range(5):
        budget.deposit()
    assert budget.withdraw() and not budget.withdraw()


def test_outcomes_merged_late_count_from_when_they_happened():
    clock = Clock()
    health = MemoryHealth(clock)
    health.record_failure(KEY, ago_s=31)  # another process's failure, older than the failure window
    assert health.snapshot([KEY]).of(KEY).state is HealthState.OK
    health.record_failure(KEY, ago_s=5)
    health.record_failure(KEY, ago_s=40)  # arrives out of order: the newer failure still counts
    stats = health.snapshot([KEY]).of(KEY)
    assert stats.state is HealthState.EJECTED and stats.uptime == 0.0
    assert stats.ejected_until_s == clock.now - 5 + 30  # the period runs from the newest failure
    health.record_success(KEY, ttft_s=0.1, latency_s=1.1, completion_tokens=11, ago_s=STATS_WINDOW_S + 1)
    assert health.snapshot([KEY]).of(KEY).uptime == 0.0  # outside the stats window: not counted


def test_a_failure_while_half_open_ejects_again_even_without_this_processs_probe():
    clock = Clock()
    health = MemoryHealth(clock)
    for _ in range(3):
        health.record_failure(KEY)
    clock.now += 30.5
    assert health.snapshot([KEY]).of(KEY).state is HealthState.HALF_OPEN
    health.record_failure(KEY)  # e.g. another process's probe failed, merged through Redis
    stats = health.snapshot([KEY]).of(KEY)
    assert stats.state is HealthState.EJECTED and stats.ejected_until_s == clock.now + 60
    health.record_failure(KEY, ago_s=10)  # happened before this ejection ended: no new ejection
    assert health.snapshot([KEY]).of(KEY).ejected_until_s == clock.now + 60


def test_a_state_only_snapshot_has_the_same_state_and_no_window_figures():
    clock = Clock()
    health = MemoryHealth(clock, eject_after=2)
    health.record_success(KEY, ttft_s=0.2, latency_s=1.0, completion_tokens=10)
    assert health.snapshot([KEY], window=False).of(KEY).ttft_s is None  # not computed
    assert health.snapshot([KEY]).of(KEY).ttft_s is not None
    for _ in range(2):
        health.record_failure(KEY)
        full, lean = health.snapshot([KEY]).of(KEY), health.snapshot([KEY], window=False).of(KEY)
        assert (lean.state, lean.ejected_until_s, lean.consecutive_failures) == (
            full.state,
            full.ejected_until_s,
            full.consecutive_failures,
        )
    assert lean.state is HealthState.EJECTED
