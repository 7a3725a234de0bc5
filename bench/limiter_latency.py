"""Cost of the rate limiter (issue #7, targets R4 and R5): per-decision latency in process, and the
latency it adds to a whole request through the real gateway.

    .venv/bin/python bench/limiter_latency.py [--decisions 20000] [--requests 2000] [--rounds 5]

1. Decisions: `RequestLimiter.admit` on the rules of a request with every operator limit on (key
   rpm + tpm, account rpm + tpm: four GCRA rules in one decision), and on the free tier's two rules,
   with the memory store, the Redis store (one Lua script per decision, shared Redis at
   127.0.0.1:6379), the resilient store in front of Redis (what a scale-out process runs), and the
   resilient store with Redis down (per-process fallback). Plus the tokens-per-minute correction,
   and a bare PING as the floor of one redis-py round trip.
   p50 / p99 / max in microseconds over `--decisions` sequential calls, 1,000 different keys.
2. End to end: two gateways on the same fake upstream, same SQLite file, same Redis; one with
   every operator limit on (high enough never to refuse), one with none. Sequential requests,
   interleaved rounds; the difference of the percentiles is what the limiter adds. A third gateway
   has the limits on and its Redis URL pointing at a closed port (Redis down, R4).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.fakes.openai_upstream import FakeOpenAIUpstream  # noqa: E402
from tests.support.gateway import UPSTREAM_KEY_ENV, GatewayProcess, acme_config_toml, free_port  # noqa: E402
from tests.support.redis_server import delete_prefix, unique_prefix  # noqa: E402

from polyroute.limits.limiter import RequestLimiter, Subject  # noqa: E402
from polyroute.limits.memory_store import MemoryLimitStore  # noqa: E402
from polyroute.limits.redis_store import RedisLimitStore  # noqa: E402
from polyroute.limits.resilient_store import ResilientLimitStore  # noqa: E402
from polyroute.limits.store import LimitStore  # noqa: E402
from polyroute.settings import LimitSettings  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
HIGH = 1_000_000_000  # per minute: never refuses, so every decision does the full work
ALL_ON = LimitSettings(key_rpm=HIGH, key_tpm=HIGH, account_rpm=HIGH, account_tpm=HIGH, free_rpm=HIGH, free_rpd=HIGH)
KEYS = 1000


def percentiles_us(samples_ns: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 / 1000, p99 / 1000, ordered[-1] / 1000


async def time_calls(count: int, call: Callable[[int], Awaitable[object]]) -> list[int]:
    for i in range(min(500, count)):  # warm-up: script load, pool connections
        await call(i)
    samples = []
    for i in range(count):
        started = time.perf_counter_ns()
        await call(i)
        samples.append(time.perf_counter_ns() - started)
    return samples


async def decision_rows(count: int) -> list[tuple[str, list[int]]]:
    prefix = unique_prefix()
    stores: dict[str, Callable[[], LimitStore]] = {
        "memory": MemoryLimitStore,
        "redis (Lua)": lambda: RedisLimitStore.from_url(REDIS_URL, prefix=prefix),
        "resilient -> redis": lambda: ResilientLimitStore(RedisLimitStore.from_url(REDIS_URL, prefix=prefix)),
        "resilient, redis down": lambda: ResilientLimitStore(
            RedisLimitStore.from_url(f"redis://127.0.0.1:{free_port()}/0", prefix=prefix)
        ),
    }
    rows = []
    floor = RedisLimitStore.from_url(REDIS_URL, prefix=prefix)
    rows.append(("redis PING (redis-py round-trip floor)", await time_calls(count, lambda _: floor.ping())))
    await floor.aclose()
    try:
        for name, make in stores.items():
            limiter = RequestLimiter(make(), ALL_ON)
            subjects = [Subject(f"{i:064x}", i, tokens=500) for i in range(KEYS)]

            async def operator(i: int, limiter: RequestLimiter = limiter, subjects: list[Subject] = subjects) -> None:
                await limiter.admit(limiter.operator_rules(subjects[i % KEYS]))

            async def free(i: int, limiter: RequestLimiter = limiter) -> None:
                await limiter.admit(limiter.free_rules(i % KEYS, 0))

            async def correct(i: int, limiter: RequestLimiter = limiter, subjects: list[Subject] = subjects) -> None:
                await limiter.correct(subjects[i % KEYS], 20)

            rows.append((f"{name}: 4 operator rules", await time_calls(count, operator)))
            rows.append((f"{name}: free tier (2 rules)", await time_calls(count, free)))
            rows.append((f"{name}: tpm correction", await time_calls(count, correct)))
            await limiter.aclose()
    finally:
        delete_prefix(REDIS_URL, prefix)
    return rows


def end_to_end(requests_per_round: int, rounds: int) -> dict[str, list[float]]:
    prefix = unique_prefix()
    limits = {"POLYROUTE_KEY_RPM": str(HIGH), "POLYROUTE_KEY_TPM": str(HIGH)}
    limits |= {"POLYROUTE_ACCOUNT_RPM": str(HIGH), "POLYROUTE_ACCOUNT_TPM": str(HIGH)}
    shared = {"POLYROUTE_REDIS_URL": REDIS_URL, "POLYROUTE_REDIS_PREFIX": prefix}
    variants = {
        "limits off": shared,
        "limits on (Redis)": {**shared, **limits},
        "limits on, Redis down": {**limits, "POLYROUTE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    with FakeOpenAIUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        config = acme_config_toml(upstream.base_url)
        gateways = {}
        try:
            for i, (name, env) in enumerate(variants.items()):
                process = GatewayProcess(Path(tmp) / f"g{i}", config, {UPSTREAM_KEY_ENV: upstream.api_key, **env})
                gateways[name] = process.start()
            keys = {
                name: g.create_key(name="bench", account=f"bench{i}@example.com")["key"]
                for i, (name, g) in enumerate(gateways.items())
            }
            body = {"model": "acme/mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
            sessions = {name: requests.Session() for name in gateways}
            for round_no in range(rounds + 1):  # round 0 warms up and is dropped
                for name, gateway in gateways.items():
                    url, headers = f"{gateway.base_url}/chat/completions", {"Authorization": f"Bearer {keys[name]}"}
                    for _ in range(requests_per_round):
                        started = time.perf_counter()
                        reply = sessions[name].post(url, json=body, headers=headers, timeout=30)
                        took_ms = (time.perf_counter() - started) * 1000
                        if reply.status_code != 200:
                            raise RuntimeError(f"{name}: {reply.status_code} {reply.text[:200]}")
                        if round_no:
                            samples[name].append(took_ms)
        finally:
            for gateway in gateways.values():
                gateway.stop()
            delete_prefix(REDIS_URL, prefix)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=400, help="requests per gateway per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    print(f"Limiter decisions, {args.decisions} sequential calls each, {KEYS} keys")
    print(f"{'store and call':<48}{'p50 µs':>9}{'p99 µs':>9}{'max µs':>10}")
    for name, samples in asyncio.run(decision_rows(args.decisions)):
        p50, p99, worst = percentiles_us(samples)
        print(f"{name:<48}{p50:>9.1f}{p99:>9.1f}{worst:>10.0f}")

    samples = end_to_end(args.requests, args.rounds)
    print(f"\nEnd to end, sequential, {args.rounds} interleaved rounds of {args.requests} requests per gateway")
    print(f"{'gateway':<26}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'added p99':>11}")
    base = samples["limits off"]
    base_p50, base_p99 = statistics.median(base), statistics.quantiles(base, n=100)[98]
    for name, values in samples.items():
        p50, p99 = statistics.median(values), statistics.quantiles(values, n=100)[98]
        print(f"{name:<26}{p50:>9.3f}{p99:>9.3f}{p50 - base_p50:>11.3f}{p99 - base_p99:>11.3f}")


if __name__ == "__main__":
    main()
