"""Helpers for multi-process tests: a fresh PostgreSQL database (sync), barrier-released bursts of
chat requests against several gateways, and ledger audits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.databases import fresh_database
from tests.support.gateway import GatewayProcess

FREE_MODEL_TOML = """
[[models]]
id = "acme/gift:free"
name = "Acme: gift (free)"
context_length = 8192
[[models.endpoints]]
provider = "acme"
upstream_id = "mock-model"
prompt_price = "0"
completion_price = "0"
"""


@contextmanager
def postgres_database(tmp_path: Path) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    manager = fresh_database("postgres", tmp_path)
    try:
        url = loop.run_until_complete(manager.__aenter__())
        try:
            yield url
        finally:
            loop.run_until_complete(manager.__aexit__(None, None, None))
    finally:
        loop.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]


def chat_body(model: str = "acme/mock-model", max_tokens: int = 16) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}


async def _burst(targets: Sequence[tuple[str, str]], body: dict[str, Any], timeout_s: float) -> list[Reply]:
    """POST `body` once per (base_url, key) target, all released together by one barrier."""
    gate = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:

        async def one(base_url: str, key: str) -> Reply:
            await gate.wait()
            headers = {"Authorization": f"Bearer {key}"}
            async with http.post(f"{base_url}/chat/completions", json=body, headers=headers) as response:
                payload = await response.json(content_type=None)
                return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, payload)

        tasks = [asyncio.create_task(one(url, key)) for url, key in targets]
        await asyncio.sleep(0.2)  # every task is parked on the barrier
        gate.set()
        return list(await asyncio.gather(*tasks))


def burst(
    targets: Sequence[tuple[str, str]], body: dict[str, Any] | None = None, timeout_s: float = 120.0
) -> tuple[list[Reply], float]:
    """Run a barrier-released burst; returns the replies and how long the burst took (s)."""
    started = time.monotonic()
    replies = asyncio.run(_burst(targets, body or chat_body(), timeout_s))
    return replies, time.monotonic() - started


def spread(gateways: Sequence[GatewayProcess], keys: Sequence[str], count: int) -> list[tuple[str, str]]:
    """`count` targets alternating over the gateways and the keys."""
    return [(gateways[i % len(gateways)].base_url, keys[i % len(keys)]) for i in range(count)]


def ledger_audit(gateway: GatewayProcess, account_id: int) -> dict[str, Any]:
    """Balance, open reservations and per-generation entry counts of one account.

    The reads are separate statements: open reservations are counted first, so that once no request is
    running (nothing new can be reserved) a count of 0 means every later read sees them all closed.
    Counted last, a close landing between the reads (a background release or settle retry) looked
    like a hold still counted in the balance with no reservation and no closing entry."""
    open_holds = gateway.sql("SELECT count(*) AS n FROM reservations WHERE account_id = :a", a=account_id)[0]["n"]
    balance = gateway.sql(
        "SELECT credits_pusd, spent_pusd, reserved_pusd FROM account_balances WHERE account_id = :a", a=account_id
    )[0]
    terminal = gateway.sql(
        "SELECT ref, count(*) AS n, sum(amount_pusd) AS total FROM ledger_entries "
        "WHERE account_id = :a AND kind IN ('settle', 'release', 'void') GROUP BY ref",
        a=account_id,
    )
    reserves = gateway.sql(
        "SELECT ref, count(*) AS n FROM ledger_entries WHERE account_id = :a AND kind = 'reserve' GROUP BY ref",
        a=account_id,
    )
    return {
        "balance": balance,
        "terminal": {row["ref"]: (int(row["n"]), int(row["total"] or 0)) for row in terminal},
        "reserves": {row["ref"]: int(row["n"]) for row in reserves},
        "open_holds": int(open_holds),
    }


def settled_total(gateway: GatewayProcess, account_id: int) -> int:
    """The sum of the account's settle entries: what `spent_pusd` must equal. (Release and void
    entries record the hold they gave back, which was never spent.)"""
    rows = gateway.sql("SELECT amount_pusd FROM ledger_entries WHERE account_id = :a AND kind = 'settle'", a=account_id)
    return sum(int(row["amount_pusd"]) for row in rows)


def account_id_of(gateway: GatewayProcess, key_hash: str) -> int:
    return int(gateway.sql("SELECT account_id FROM api_keys WHERE hash = :h", h=key_hash)[0]["account_id"])
