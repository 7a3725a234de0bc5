"""64 concurrent requests race for a balance that covers about 10 of them, through a two-worker gateway.

Never a negative balance; the final balance equals grants minus settled costs to the last pUSD (as
the ledger entries, the generation records and the clients' own `usage.cost` all say); no
reservation is left behind; the refused requests got OpenRouter's 402 before any upstream call.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import openai
import pytest
from tests.support.contract import validating_async_http_client
from tests.support.gateway import GatewayProcess

from polyroute.billing.token_estimate import prompt_token_bound

PROMPT_PRICE, COMPLETION_PRICE = 500_000, 1_500_000  # pUSD per token: $0.50 / $1.50 per million
MSG = [{"role": "user", "content": "race"}]
MAX_TOKENS = 100
REQUESTS = 64
# The worst case the gateway reserves per request (prompt bound + max_tokens), and a grant of about ten.
RESERVATION = prompt_token_bound(MSG) * PROMPT_PRICE + MAX_TOKENS * COMPLETION_PRICE
GRANT_PUSD = 10 * RESERVATION + RESERVATION // 2


def usd_to_pusd(cost: float) -> int:
    return int(Decimal(repr(cost)) * 10**12)


@pytest.fixture(scope="module")
def two_worker_gateway(
    database_kind: str,
    gateway_database_url: str | None,
    gateway_config: str,
    gateway_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
):
    workdir = tmp_path_factory.mktemp(f"race-{database_kind}")
    process = GatewayProcess(workdir, gateway_config, gateway_env, gateway_database_url)
    process.extra_args = ["--workers", "2"]
    with process:
        yield process


async def one_request(client: openai.AsyncOpenAI, index: int) -> tuple[str, int | None]:
    """("ok", charged pUSD) or ("402", None); even requests stream, odd ones do not."""
    try:
        if index % 2:
            reply = await client.chat.completions.create(
                model="acme/long-100", messages=MSG, max_tokens=MAX_TOKENS, extra_headers={"X-Title": "race"}
            )
            return "ok", usd_to_pusd((reply.usage.model_extra or {})["cost"])
        stream = await client.chat.completions.create(
            model="acme/long-100", messages=MSG, max_tokens=MAX_TOKENS, stream=True
        )
        cost = None
        async for chunk in stream:
            if chunk.usage is not None:
                cost = usd_to_pusd((chunk.usage.model_extra or {})["cost"])
        return "ok", cost
    except openai.APIStatusError as error:
        assert error.status_code == 402, error
        message = error.body["message"] if isinstance(error.body, dict) else str(error)
        assert "can only afford" in message or "Insufficient credits" in message
        return "402", None


async def race(base_url: str, key: str) -> list[tuple[str, int | None]]:
    async with openai.AsyncOpenAI(
        base_url=base_url, api_key=key, http_client=validating_async_http_client(), max_retries=0, timeout=60
    ) as client:
        return await asyncio.gather(*(one_request(client, i) for i in range(REQUESTS)))


def ledger_state(gateway: GatewayProcess, account_id: int) -> dict[str, Any]:
    [balance] = gateway.sql("SELECT * FROM account_balances WHERE account_id = :a", a=account_id)
    sums = {
        row["kind"]: int(row["total"])
        for row in gateway.sql(
            "SELECT kind, SUM(amount_pusd) AS total FROM ledger_entries WHERE account_id = :a GROUP BY kind",
            a=account_id,
        )
    }
    per_ref = gateway.sql(
        "SELECT ref, COUNT(*) AS closings FROM ledger_entries WHERE account_id = :a "
        "AND kind IN ('settle', 'release', 'void') GROUP BY ref",
        a=account_id,
    )
    reserves = gateway.sql("SELECT ref FROM ledger_entries WHERE account_id = :a AND kind = 'reserve'", a=account_id)
    open_rows = gateway.sql("SELECT ref FROM reservations WHERE account_id = :a", a=account_id)
    generated = gateway.sql(
        "SELECT COALESCE(SUM(cost_pusd), 0) AS total, COUNT(*) AS n FROM generations WHERE account_id = :a",
        a=account_id,
    )[0]
    return {
        "balance": balance,
        "sums": sums,
        "closings": {row["ref"]: int(row["closings"]) for row in per_ref},
        "reserves": {row["ref"] for row in reserves},
        "open": open_rows,
        "generated_pusd": int(generated["total"]),
        "generated": int(generated["n"]),
    }


def test_concurrent_requests_never_overspend_and_settle_to_the_last_unit(two_worker_gateway, fake_upstream):
    gateway = two_worker_gateway
    grant_usd = str(Decimal(GRANT_PUSD) / 10**12)
    record = gateway.create_key(name="race", account="race@example.com", credits=grant_usd)
    calls_before = len(fake_upstream.chat_requests())

    results = asyncio.run(race(gateway.base_url, record["key"]))

    served = [cost for outcome, cost in results if outcome == "ok"]
    refused = sum(outcome == "402" for outcome, _ in results)
    assert len(served) + refused == REQUESTS
    assert len(served) >= 10 and refused > 0, (len(served), refused)
    assert all(cost is not None and cost > 0 for cost in served)
    # Refused requests never reached the upstream.
    assert len(fake_upstream.chat_requests()) - calls_before == len(served)

    state = ledger_state(gateway, record["account_id"])
    balance = state["balance"]
    charged = sum(c for c in served if c is not None)
    assert balance["credits_pusd"] == GRANT_PUSD == state["sums"]["grant"]
    assert balance["spent_pusd"] == charged == state["sums"]["settle"] == state["generated_pusd"]
    assert balance["credits_pusd"] - balance["spent_pusd"] == GRANT_PUSD - charged >= 0
    assert balance["reserved_pusd"] == 0 and state["open"] == []  # no leaked reservation
    assert state["reserves"] == set(state["closings"]) and set(state["closings"].values()) == {1}
    assert len(state["reserves"]) == len(served) == state["generated"]
