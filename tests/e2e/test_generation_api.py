"""`usage.cost` as clients read it, `GET /generation?id=`, `GET /credits` and `GET /activity`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from tests.support.contract import ContractSession

MSG = [{"role": "user", "content": "count my cost"}]


def settled(gateway, ref: str) -> int:
    [row] = gateway.sql("SELECT amount_pusd FROM ledger_entries WHERE ref = :r AND kind = 'settle'", r=ref)
    return int(row["amount_pusd"])


def to_pusd(cost: float) -> int:
    return int(Decimal(repr(cost)) * 10**12)


def fetch_generation(http, ref: str, within_s: float = 1.0) -> tuple[dict, float]:
    started = time.monotonic()
    while True:
        response = http.get("generation", params={"id": ref})
        if response.status_code == 200 or time.monotonic() - started > within_s:
            break
        time.sleep(0.02)
    assert response.status_code == 200, response.text
    return response.json()["data"], time.monotonic() - started


def test_the_sdk_reads_usage_cost_and_the_generation_record_agrees(openai_client, http, gateway):
    reply = openai_client.chat.completions.with_raw_response.create(
        model="acme/mock-model", messages=MSG, extra_headers={"HTTP-Referer": "https://app.example", "X-Title": "App"}
    )
    completion = reply.parse()
    cost = (completion.usage.model_extra or {})["cost"]
    assert to_pusd(cost) == settled(gateway, completion.id) > 0
    data, waited_s = fetch_generation(http, completion.id)
    assert waited_s < 1.0
    assert data["id"] == completion.id and data["total_cost"] == cost == data["usage"]
    assert (data["model"], data["provider_name"], data["streamed"], data["cancelled"]) == (
        "acme/mock-model",
        "acme",
        False,
        False,
    )
    assert (data["tokens_prompt"], data["tokens_completion"]) == (completion.usage.prompt_tokens, 4)
    assert data["finish_reason"] == "stop" and data["http_referer"] == "https://app.example"
    assert data["app_title"] == "App" and data["latency"] >= 0


def test_a_streamed_requests_cost_is_in_its_last_chunk_and_its_record(openai_client, http, gateway):
    stream = openai_client.chat.completions.create(model="acme/mock-model", messages=MSG, stream=True)
    chunks = list(stream)
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    cost = (usage.model_extra or {})["cost"]
    assert to_pusd(cost) == settled(gateway, chunks[-1].id)
    details = usage.model_extra or {}
    assert "cost_details" in details and usage.prompt_tokens_details is not None
    data, _ = fetch_generation(http, chunks[-1].id)
    assert data["streamed"] is True and data["total_cost"] == cost
    assert data["time_to_first_token"] is not None and data["generation_time"] is not None


def test_raw_http_reads_usage_cost(http, gateway):
    response = http.post("chat/completions", json={"model": "acme/long-100", "messages": MSG})
    usage = response.json()["usage"]
    assert usage["cost"] == settled(gateway, response.headers["X-Generation-Id"]) / 10**12
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_generation_lookup_refuses_other_accounts_and_bad_ids(http, gateway):
    response = http.post("chat/completions", json={"model": "acme/mock-model", "messages": MSG})
    ref = response.headers["X-Generation-Id"]
    stranger = gateway.create_key(name="nosy", account="nosy@example.com")["key"]
    headers = {"Authorization": f"Bearer {stranger}"}
    assert (
        requests.get(f"{gateway.base_url}/generation", params={"id": ref}, headers=headers, timeout=10).status_code
        == 404
    )
    assert http.get("generation", params={"id": "gen-0-nope"}).status_code == 404
    missing = requests.get(f"{gateway.base_url}/generation", headers=headers, timeout=10)
    assert missing.status_code == 400


def test_credits_report_grants_and_settled_usage(gateway, contract_checker):
    record = gateway.create_key(name="c", account="credits@example.com", credits="2.5")
    with ContractSession(gateway.base_url, record["key"], contract_checker) as session:
        assert session.get("credits").json()["data"] == {"total_credits": 2.5, "total_usage": 0}
        session.post("chat/completions", json={"model": "acme/mock-model", "messages": MSG})
        data = session.get("credits").json()["data"]
    [balance] = gateway.sql("SELECT spent_pusd FROM account_balances WHERE account_id = :a", a=record["account_id"])
    assert data["total_credits"] == 2.5 and data["total_usage"] == int(balance["spent_pusd"]) / 10**12 > 0


@pytest.fixture
def activity_account(gateway):
    """An account with generations back-dated to yesterday and three days ago (two keys, two models)."""
    admin = gateway.create_key(name="a", account="activity@example.com", management=True)
    first = gateway.create_key(name="k1", account="activity@example.com")
    second = gateway.create_key(name="k2", account="activity@example.com")
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    rows = [
        (first, "acme/mock-model", today - timedelta(days=1), 100, 10, 20, 3),
        (first, "acme/mock-model", today - timedelta(days=1), 200, 1, 2, 0),
        (second, "acme/long-100", today - timedelta(days=1), 50, 5, 5, 0),
        (first, "acme/mock-model", today - timedelta(days=3), 7, 1, 1, 0),
        (first, "acme/mock-model", today, 1_000, 1, 1, 0),  # today is not a completed day
    ]
    for index, (key, model, created, cost, prompt, completion, reasoning) in enumerate(rows):
        gateway.sql(
            "INSERT INTO generations (id, account_id, key_hash, model, provider, streamed, status, prompt_tokens, "
            "completion_tokens, cached_tokens, reasoning_tokens, cost_pusd, created_at) VALUES (:id, :a, :k, :m, "
            "'acme', false, 'ok', :p, :c, 0, :r, :cost, :t)",
            id=f"gen-activity-{index}-{time.time_ns()}",
            a=key["account_id"],
            k=key["hash"],
            m=model,
            p=prompt,
            c=completion,
            r=reasoning,
            cost=cost * 10**6,
            t=created if gateway.database_url.startswith("postgresql") else created.strftime("%Y-%m-%d %H:%M:%S.%f"),
        )
    return admin["key"], first["hash"], today


def test_activity_has_daily_rows_per_model_and_endpoint(gateway, activity_account, contract_checker):
    admin_key, first_hash, today = activity_account
    with ContractSession(gateway.base_url, admin_key, contract_checker) as session:
        rows = session.get("activity").json()["data"]
        yesterday = (today - timedelta(days=1)).date().isoformat()
        by_model = {(row["date"], row["model"]): row for row in rows}
        mock = by_model[(yesterday, "acme/mock-model")]
        assert (mock["requests"], mock["prompt_tokens"], mock["completion_tokens"], mock["reasoning_tokens"]) == (
            2,
            11,
            22,
            3,
        )
        assert mock["usage"] == 300 * 10**6 / 10**12 and mock["provider_name"] == "acme"
        assert by_model[(yesterday, "acme/long-100")]["requests"] == 1
        assert ((today - timedelta(days=3)).date().isoformat(), "acme/mock-model") in by_model
        assert all(row["date"] != today.date().isoformat() for row in rows)
        one_key = session.get("activity", params={"api_key_hash": first_hash, "date": yesterday}).json()["data"]
        assert [(row["model"], row["requests"]) for row in one_key] == [("acme/mock-model", 2)]
        today_rows = session.get("activity", params={"date": today.date().isoformat()}).json()["data"]
        assert [row["requests"] for row in today_rows] == [1]
        assert session.get("activity", params={"date": "last-week"}).status_code == 400
