"""SharedHealth against a real Redis: one process's failures and samples reach another within a second,
a process started later replays them, and a Redis that is down costs nothing but the sharing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
from tests.support.gateway import free_port
from tests.support.redis_server import ThrowawayRedis, delete_prefix, shared_redis_url, unique_prefix

from polyroute.routing.health import HealthState, MemoryHealth
from polyroute.routing.redis_health import SharedHealth

KEY = ("a/m", "cheap")
OTHER = ("a/m", "dear")


@pytest.fixture
async def make_shared() -> AsyncIterator[Callable[[], SharedHealth]]:
    url = shared_redis_url()
    prefix = unique_prefix()
    started: list[SharedHealth] = []

    def make() -> SharedHealth:
        shared = SharedHealth(MemoryHealth(), url, stream_key=prefix + "health", flush_s=0.05)
        started.append(shared)
        return shared

    yield make
    for shared in started:
        await shared.aclose()
    delete_prefix(url, prefix)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 2.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_failures_in_one_process_eject_the_endpoint_in_another_within_a_second(make_shared) -> None:
    first, second = make_shared(), make_shared()
    await first.start()
    await second.start()
    await asyncio.wait_for(second.caught_up.wait(), 2)
    for _ in range(3):
        first.record_failure(KEY)
    first.record_success(OTHER, ttft_s=0.1, latency_s=0.5, completion_tokens=41)
    took_s = await wait_until(lambda: second.snapshot([KEY]).of(KEY).state is HealthState.EJECTED)
    print(f"ejection seen by the other process after {took_s * 1000:.0f} ms")
    assert took_s < 1.0
    await wait_until(lambda: OTHER in second.all_stats())
    stats = second.all_stats()
    assert stats[KEY].uptime == 0.0 and stats[OTHER].uptime == 1.0
    assert stats[OTHER].ttft_s is not None and stats[OTHER].ttft_s.p50 == pytest.approx(0.1)
    assert stats[OTHER].throughput_tps is not None and stats[OTHER].throughput_tps.p50 == pytest.approx(100.0)
    # Its own outcomes are not merged back into the process that recorded them.
    assert first.merged == 0 and first.all_stats()[KEY].uptime == 0.0 and len(first.all_stats()) == 2


async def test_a_retry_after_seen_elsewhere_keeps_traffic_away_here_too(make_shared) -> None:
    first, second = make_shared(), make_shared()
    await first.start()
    await second.start()
    await asyncio.wait_for(second.caught_up.wait(), 2)
    first.record_failure(KEY, retry_after_s=60)
    await wait_until(lambda: second.merged == 1)
    assert second.snapshot([KEY]).of(KEY).state is HealthState.DEGRADED


async def test_a_process_that_starts_later_replays_recent_outcomes(make_shared) -> None:
    first = make_shared()
    await first.start()
    for _ in range(3):
        first.record_failure(KEY)
    await first.flush()
    late = make_shared()
    await late.start()
    await asyncio.wait_for(late.caught_up.wait(), 2)
    assert late.merged == 3
    assert late.snapshot([KEY]).of(KEY).state is HealthState.EJECTED


async def test_redis_down_leaves_each_process_its_own_stats_and_logs_once(caplog) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    shared = SharedHealth(MemoryHealth(), dead, stream_key="polyroute-test:dead:health", flush_s=0.02)
    caplog.set_level(logging.WARNING, logger="polyroute.routing.redis_health")
    await shared.start()
    try:
        await asyncio.sleep(0.5)  # idle: empty flushes while the reader keeps failing are no "recovery"
        for _ in range(3):
            shared.record_failure(KEY)  # never raises, never waits
            await asyncio.sleep(0.1)
        assert shared.snapshot([KEY]).of(KEY).state is HealthState.EJECTED
        warnings = [r for r in caplog.records if "not shared through Redis" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    finally:
        await shared.aclose()


async def test_sharing_resumes_by_itself_when_redis_comes_back(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="polyroute.routing.redis_health")
    server = ThrowawayRedis(tmp_path / "redis", free_port()).start()
    first = SharedHealth(MemoryHealth(), server.url, stream_key="health", flush_s=0.05)
    second = SharedHealth(MemoryHealth(), server.url, stream_key="health", flush_s=0.05)
    await first.start()
    await second.start()
    try:
        await asyncio.wait_for(second.caught_up.wait(), 2)
        server.stop()
        first.record_failure(KEY)  # while Redis is down: kept, and still counted here at once
        assert first.snapshot([KEY]).of(KEY).state is HealthState.DEGRADED
        await asyncio.sleep(0.3)
        server.start()  # an empty Redis: the stream is gone too
        took_s = await wait_until(lambda: second.merged == 1, timeout_s=6.0)
        print(f"outcome kept through the outage reached the other process {took_s:.2f} s after Redis returned")
        assert second.snapshot([KEY]).of(KEY).state is HealthState.DEGRADED
        messages = [r.getMessage() for r in caplog.records]
        # Once per store and outage (both stores live in this test process and share the logger).
        assert sum("not shared through Redis" in m for m in messages) == 2, messages
        assert sum("shared through Redis again" in m for m in messages) == 2, messages
    finally:
        await first.aclose()
        await second.aclose()
        server.stop()
