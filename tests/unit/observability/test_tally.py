"""Folded metric updates: the same exposition as prometheus_client's own calls, handed over when asked
(one process) or once per loop pass (several workers)."""

from __future__ import annotations

import asyncio
import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from polyroute.observability.metrics import LATENCY_BUCKETS_S, OVERHEAD_BUCKETS_S
from polyroute.observability.tally import Tally


def _pair() -> tuple[CollectorRegistry, Counter, Histogram, Histogram]:
    registry = CollectorRegistry(auto_describe=False)
    counter = Counter("unit_requests", "requests", ["route", "status"], registry=registry)
    labelled = Histogram("unit_duration_seconds", "duration", ["route"], buckets=LATENCY_BUCKETS_S, registry=registry)
    plain = Histogram("unit_overhead_seconds", "overhead", buckets=OVERHEAD_BUCKETS_S, registry=registry)
    return registry, counter, labelled, plain


def _text(registry: CollectorRegistry) -> list[str]:
    """The exposition without the `_created` samples (when each registry's series were made)."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_folded_updates_render_as_direct_calls_do() -> None:
    direct, d_counter, d_labelled, d_plain = _pair()
    folded, f_counter, f_labelled, f_plain = _pair()
    tally = Tally()
    rng = random.Random(7)
    # every bound exactly (the bucket holds values <= its bound), zero, beyond the last bound, and noise
    values = [*LATENCY_BUCKETS_S, *OVERHEAD_BUCKETS_S, 0.0, 1e6, *(rng.uniform(0, 400) for _ in range(300))]
    for i, value in enumerate(values):
        route, status = f"/r{i % 3}", ("200", "404")[i % 2]
        d_counter.labels(route, status).inc(i % 5)
        tally.count((f_counter, route, status), i % 5)
        d_labelled.labels(route).observe(value)
        tally.observe((f_labelled, route), value)
        d_plain.observe(value)
        tally.observe((f_plain,), value)
    assert _text(folded) != _text(direct)  # nothing handed over yet
    tally.flush()
    assert _text(folded) == _text(direct)
    tally.count((f_counter, "/r0", "200"), 2)
    d_counter.labels("/r0", "200").inc(2)
    tally.flush()
    tally.flush()  # a second flush hands nothing over twice
    assert _text(folded) == _text(direct)


def _count(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value("unit_requests_total", {"route": "/x", "status": "200"})
    return value or 0.0


async def test_a_per_pass_tally_hands_over_at_the_next_loop_pass() -> None:
    registry, counter, _, _ = _pair()
    tally = Tally(per_pass=True)
    for _ in range(3):
        tally.count((counter, "/x", "200"))
    assert _count(registry) == 0
    await asyncio.sleep(0)
    assert _count(registry) == 3
    tally.count((counter, "/x", "200"))  # the next pass schedules again
    await asyncio.sleep(0)
    assert _count(registry) == 4


def test_a_per_pass_tally_outside_a_loop_hands_over_at_once_and_a_plain_one_waits() -> None:
    registry, counter, _, _ = _pair()
    Tally(per_pass=True).count((counter, "/x", "200"))
    assert _count(registry) == 1
    waiting = Tally()
    waiting.count((counter, "/x", "200"), 5)
    assert _count(registry) == 1
    waiting.flush()
    assert _count(registry) == 6


def test_a_per_pass_tally_whose_loop_closed_schedules_on_the_next_one() -> None:
    registry, counter, _, _ = _pair()
    tally = Tally(per_pass=True)

    async def update() -> None:
        tally.count((counter, "/x", "200"))

    closed = asyncio.new_event_loop()
    closed.close()
    tally._scheduled_on = closed  # a flush scheduled there was dropped with the loop
    asyncio.run(update())
    assert _count(registry) == 1
