"""Fault paths against the fake upstream, checked in the ledger: each request is charged once, for what
the attempt that delivered actually delivered, or not at all.

Prices of every `acme/<scenario>` model: 500000 pUSD per prompt token, 1500000 per completion token.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from polyroute.billing.token_estimate import estimate_prompt_tokens

PROMPT, COMPLETION = 500_000, 1_500_000
MSG = [{"role": "user", "content": "hi"}]


def entries(gateway, ref: str, timeout_s: float = 5.0) -> dict[str, int]:
    """The ledger entries of one request by kind, once it has closed (waits up to `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = gateway.sql("SELECT kind, amount_pusd FROM ledger_entries WHERE ref = :r", r=ref)
        found = {row["kind"]: int(row["amount_pusd"]) for row in rows}
        if set(found) - {"reserve"} or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def generation(gateway, ref: str) -> dict[str, Any]:
    [row] = gateway.sql("SELECT * FROM generations WHERE id = :r", r=ref)
    return row


def balance(gateway, account_id: int) -> tuple[int, int, int]:
    [row] = gateway.sql("SELECT * FROM account_balances WHERE account_id = :a", a=account_id)
    return int(row["credits_pusd"]), int(row["spent_pusd"]), int(row["reserved_pusd"])


def sse_events(response) -> list[Any]:
    data = [line[6:] for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    return [json.loads(item) for item in data if item != "[DONE]"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("scenario", ["error-500", "error-503", "garbage"])
def test_an_upstream_failure_costs_nothing(gateway, http, api_key_record, scenario, stream):
    before = balance(gateway, api_key_record["account_id"])
    response = http.post("chat/completions", json={"model": f"acme/{scenario}", "messages": MSG, "stream": stream})
    assert response.status_code == 502
    ref = response.headers["X-Generation-Id"]
    found = entries(gateway, ref)
    assert set(found) == {"reserve", "release"} and found["release"] == found["reserve"] > 0
    row = generation(gateway, ref)
    assert (row["status"], row["cost_pusd"]) == ("error", 0)
    assert balance(gateway, api_key_record["account_id"]) == before


@pytest.mark.parametrize("stream", [False, True])
def test_a_fallback_is_charged_once_for_the_attempt_that_delivered(gateway, http, fake_upstream, stream):
    response = http.post("chat/completions", json={"model": "acme/failover", "messages": MSG, "stream": stream})
    assert response.status_code == 200
    # The failing cheaper endpoint is tried first unless it failed in the last 30 s (then it is skipped).
    assert [r.body["model"] for r in fake_upstream.chat_requests()] in (["error-503", "mock-model"], ["mock-model"])
    ref = response.headers["X-Generation-Id"]
    usage = sse_events(response)[-1]["usage"] if stream else response.json()["usage"]
    expected = 1 * PROMPT + 2 * COMPLETION  # the fake counts words: "hi" in, "Echo: hi" out, at acme's prices
    found = entries(gateway, ref)
    assert set(found) == {"reserve", "settle"} and found["settle"] == expected
    assert found["reserve"] >= expected  # the reservation covered the dearer of the two attempts
    assert usage["cost"] == expected / 10**12
    assert generation(gateway, ref)["provider"] == "acme"


@pytest.mark.parametrize("scenario", ["cut-after-2", "stall-after-2"])
def test_a_stream_broken_mid_way_is_charged_for_delivered_tokens_only(gateway, http, scenario):
    response = http.post("chat/completions", json={"model": f"acme/{scenario}", "messages": MSG, "stream": True})
    events = sse_events(response)
    delivered = [e["choices"][0]["delta"].get("content") for e in events[:-1] if e["choices"]]
    assert len([piece for piece in delivered if piece]) == 2
    final = events[-1]
    assert final["error"]["code"] == 502
    # The fake sends no usage on a broken stream: we count the prompt and the two delivered tokens.
    expected = estimate_prompt_tokens(MSG) * PROMPT + 2 * COMPLETION
    assert final["usage"]["completion_tokens"] == 2 and final["usage"]["cost"] == expected / 10**12
    ref = response.headers["X-Generation-Id"]
    assert entries(gateway, ref)["settle"] == expected
    row = generation(gateway, ref)
    assert (row["status"], row["completion_tokens"], row["cost_pusd"]) == ("error", 2, expected)


def test_a_client_leaving_mid_stream_closes_the_upstream_and_pays_for_what_it_got(gateway, api_key, fake_upstream):
    before = len(fake_upstream.disconnects)
    # Leave once the second token arrived; the upstream now stalls.
    body = {"model": "acme/stall-after-2", "messages": MSG, "stream": True}
    received, closed_at = gateway.stream_then_leave(api_key, body, b"w1")
    head = received.split(b"\r\n\r\n", 1)[0].decode()
    ref = next(
        line.split(":", 1)[1].strip() for line in head.splitlines() if line.lower().startswith("x-generation-id")
    )
    while len(fake_upstream.disconnects) == before and time.monotonic() < closed_at + 2:
        time.sleep(0.01)
    assert len(fake_upstream.disconnects) > before and fake_upstream.disconnects[-1] - closed_at < 1.0
    found = entries(gateway, ref)
    assert found["settle"] == estimate_prompt_tokens(MSG) * PROMPT + 2 * COMPLETION
    assert time.monotonic() - closed_at < 5
    row = generation(gateway, ref)
    assert (row["status"], row["completion_tokens"]) == ("cancelled", 2)


def test_streamed_and_unstreamed_requests_cost_the_same(gateway, http):
    body = {"model": "acme/long-100", "messages": [{"role": "user", "content": "same price please"}]}
    plain = http.post("chat/completions", json=body)
    streamed = http.post("chat/completions", json={**body, "stream": True})
    plain_cost = entries(gateway, plain.headers["X-Generation-Id"])["settle"]
    streamed_cost = entries(gateway, streamed.headers["X-Generation-Id"])["settle"]
    assert plain_cost == streamed_cost == 3 * PROMPT + 100 * COMPLETION
    assert plain.json()["usage"] == sse_events(streamed)[-1]["usage"]


def test_an_empty_answer_that_finished_is_charged_for_its_prompt(gateway, http):
    response = http.post("chat/completions", json={"model": "acme/empty", "messages": MSG})
    assert response.json()["usage"]["completion_tokens"] == 0
    assert entries(gateway, response.headers["X-Generation-Id"])["settle"] == 1 * PROMPT
