"""The ledger's two hot transactions in-process, without HTTP: reserve (`Ledger.authorize`) and settle
with its generation record (`Ledger.finish`), through the group-commit writer, as the gateway runs them.

    .venv/bin/python bench/perf/ledger_micro.py [--db sqlite|postgres] [-n 3000] [--concurrency 1]
                                                [--profile FILE.pstats]

Prints p50/p90/mean µs per step (sequential when --concurrency is 1) and the process CPU time per
request (reserve + settle). Everything else of a request (auth, HTTP, upstream) is left out, so the
figures move only with the ledger's own code: use it to compare two versions back to back
(`PYTHONPATH=<other src> .venv/bin/python bench/perf/ledger_micro.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from database import PostgresDatabase  # noqa: E402

from polyroute.accounts.store import AccountStore  # noqa: E402
from polyroute.billing.ledger import Ledger  # noqa: E402
from polyroute.billing.ledger_store import KeyBudget  # noqa: E402
from polyroute.billing.reservation import EndpointTerms  # noqa: E402
from polyroute.catalog.types import Pricing  # noqa: E402
from polyroute.db.engine import create_engine  # noqa: E402
from polyroute.db.migrate import upgrade_database  # noqa: E402
from polyroute.db.write_batcher import WriteBatcher  # noqa: E402
from polyroute.usage_log.store import GenerationStore  # noqa: E402

PLAN = [EndpointTerms(Pricing(prompt=500_000, completion=1_500_000), max_completion_tokens=1_000)]


def _row(gen_id: str, key: KeyBudget) -> dict[str, Any]:
    """A record shaped like the relay's (relay.py `_finish`)."""
    return {
        "id": gen_id,
        "account_id": key.account_id,
        "key_hash": key.key_hash,
        "model": "mock/model",
        "provider": "mock",
        "upstream_model": "gpt-4o-mini",
        "streamed": False,
        "status": "ok",
        "finish_reason": "stop",
        "native_finish_reason": "stop",
        "prompt_tokens": 12,
        "completion_tokens": 9,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost_pusd": 19_500_000,
        "latency_ms": 1,
        "ttft_ms": None,
        "http_referer": None,
        "app_title": None,
        "error_code": None,
    }


async def main(args: argparse.Namespace) -> None:
    engine = create_engine(args.url)
    await upgrade_database(args.url)
    accounts = AccountStore(engine)
    account = await accounts.create_account("bench@example.com")
    _, api_key = await accounts.create_key(account.id, "bench")
    key = KeyBudget(api_key.hash, account.id)
    writer = WriteBatcher(engine)
    ledger = Ledger(engine, writer, write_records=GenerationStore.insert_rows)
    await ledger.grant(account.id, 10**18, "grant-bench")
    reserve_ns: list[int] = []
    settle_ns: list[int] = []
    stamp = os.getpid()

    async def one(i: int) -> None:
        gen_id = f"gen-{stamp}-{i:020d}"
        t0 = time.perf_counter_ns()
        hold = await ledger.authorize(gen_id, key, "mock/model", PLAN, 12, 100)
        t1 = time.perf_counter_ns()
        await ledger.finish(hold, 19_500_000, _row(gen_id, key))
        t2 = time.perf_counter_ns()
        reserve_ns.append(t1 - t0)
        settle_ns.append(t2 - t1)

    async def loop(start: int, count: int) -> None:
        for i in range(start, start + count):
            await one(i)

    for i in range(200):  # warm up (statement caches, the writer's connection)
        await one(10**9 + i)
    reserve_ns.clear()
    settle_ns.clear()
    profiler = cProfile.Profile() if args.profile else None
    per = args.n // args.concurrency
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    await asyncio.gather(*(loop(c * per, per) for c in range(args.concurrency)))
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = per * args.concurrency
    for label, samples in (("reserve", reserve_ns), ("settle + record", settle_ns)):
        us = sorted(s / 1000 for s in samples)
        print(
            f"| {label} | {us[len(us) // 2]:.0f} | {us[int(len(us) * 0.9)]:.0f} | {statistics.fmean(us):.0f} |",
            flush=True,
        )
    print(
        f"# {done} requests, concurrency {args.concurrency}: CPU {cpu / done * 1e6:.0f} µs/request, "
        f"{done / wall:.0f} requests/s, {writer.commits} commits, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    await ledger.wait_finishing()
    await writer.aclose()
    await engine.dispose()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--profile")
    args = parser.parse_args()
    database = None
    with tempfile.TemporaryDirectory(prefix="ledger-micro.") as tmp:
        if args.db == "postgres":
            database = PostgresDatabase()
            args.url = database.create()
        else:
            args.url = f"sqlite:///{tmp}/bench.db"
        try:
            print(f"| step ({args.db}) | p50 µs | p90 µs | mean µs |\n|---|---:|---:|---:|")
            asyncio.run(main(args))
        finally:
            if database is not None:
                database.drop()


if __name__ == "__main__":
    cli()
