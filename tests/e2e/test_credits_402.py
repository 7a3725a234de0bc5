"""402 before any upstream call: an account or key that cannot cover a request's worst case, in
OpenRouter's wording; free models need no credit but refuse a negative balance; key limits per period.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests
from tests.support.gateway import acme_config_toml

from polyroute.billing.token_estimate import prompt_token_bound

PROMPT, COMPLETION = 500_000, 1_500_000
MSG = [{"role": "user", "content": "hi"}]
FREE_MODEL_TOML = """
[[models]]
id = "acme/free-echo"
name = "Acme: free echo"
context_length = 8192
[[models.endpoints]]
provider = "acme"
upstream_id = "mock-model"
prompt_price = "0"
completion_price = "0"
"""


@pytest.fixture(scope="module")
def gateway_config(fake_upstream) -> str:
    return acme_config_toml(fake_upstream.base_url, extra_toml=FREE_MODEL_TOML)


def post(gateway, key: str, body: dict) -> requests.Response:
    return requests.post(
        f"{gateway.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def get(gateway, key: str, path: str) -> dict:
    response = requests.get(f"{gateway.base_url}/{path}", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def pusd(amount_usd: float) -> int:
    return round(amount_usd * 10**12)


def usd(amount_pusd: int) -> str:
    return str(Decimal(amount_pusd) / 10**12)


def test_without_credits_paid_models_get_402_and_free_models_work(gateway, fake_upstream):
    key = gateway.create_key(name="broke", account="broke@example.com", credits=None)["key"]
    calls = len(fake_upstream.chat_requests())
    for stream in (False, True):
        refused = post(gateway, key, {"model": "acme/mock-model", "messages": MSG, "stream": stream})
        assert refused.status_code == 402 and refused.json()["error"]["code"] == 402
        assert refused.json()["error"]["message"].startswith("Insufficient credits")
        assert refused.json()["error"]["metadata"]["error_type"] == "payment_required"
    assert len(fake_upstream.chat_requests()) == calls  # refused before any upstream call
    free = post(gateway, key, {"model": "acme/free-echo", "messages": MSG})
    assert free.status_code == 200 and free.json()["usage"]["cost"] == 0
    assert get(gateway, key, "key")["is_free_tier"] is True


def test_a_grant_makes_the_account_paid_and_the_model_affordable(gateway):
    record = gateway.create_key(name="payer", account="payer@example.com", credits=None)
    assert post(gateway, record["key"], {"model": "acme/mock-model", "messages": MSG}).status_code == 402
    result = gateway.cli("credits", "grant", "--account", "payer@example.com", "--amount", "0.25")
    assert result.returncode == 0 and "$0.25" in result.stdout
    assert post(gateway, record["key"], {"model": "acme/mock-model", "messages": MSG}).status_code == 200
    assert get(gateway, record["key"], "key")["is_free_tier"] is False
    credits = get(gateway, record["key"], "credits")
    assert credits["total_credits"] == 0.25 and 0 < credits["total_usage"] < 0.25


def test_max_tokens_beyond_the_balance_says_how_many_tokens_would_fit(gateway):
    prompt_cost = prompt_token_bound(MSG) * PROMPT
    affordable = 40
    grant_pusd = prompt_cost + affordable * COMPLETION + COMPLETION // 2
    record = gateway.create_key(name="tight", account="tight@example.com", credits=usd(grant_pusd))
    refused = post(gateway, record["key"], {"model": "acme/mock-model", "messages": MSG, "max_tokens": 1000})
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["message"] == (
        "This request requires more credits, or fewer max_tokens. You requested up to 1000 tokens, "
        f"but can only afford {affordable}. To increase, add credits to this account."
    )
    assert error["metadata"]["affordable_tokens"] == affordable and error["metadata"]["limit_source"] == "account"
    assert (
        post(gateway, record["key"], {"model": "acme/mock-model", "messages": MSG, "max_tokens": 40}).status_code == 200
    )


def test_without_max_tokens_the_completion_is_capped_to_what_is_affordable(gateway, fake_upstream):
    prompt_cost = prompt_token_bound(MSG) * PROMPT
    grant_pusd = prompt_cost + 30 * COMPLETION
    record = gateway.create_key(name="capped", account="capped@example.com", credits=usd(grant_pusd))
    response = post(gateway, record["key"], {"model": "acme/long-100", "messages": MSG})
    assert response.status_code == 200
    assert fake_upstream.chat_requests()[-1].body["max_tokens"] == 30  # the reservation is a true bound
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "length" and response.json()["usage"]["completion_tokens"] == 30


# Free requests read the account's balance through a cache with the key cache's TTL (1 s here): a
# change made by another process (this test's SQL, the CLI's grant) counts once that TTL has passed;
# the gateway's own charges and grants count at once (tests/integration/test_ledger_service.py).
OTHER_PROCESS_CHANGE_SEEN_S = 1.0 + 0.25


def test_a_negative_balance_refuses_even_free_models(gateway):
    record = gateway.create_key(name="debtor", account="debtor@example.com", credits="1")
    assert post(gateway, record["key"], {"model": "acme/free-echo", "messages": MSG}).status_code == 200
    # A settle above its hold (a prompt far beyond the estimate) is the one way below zero: simulate
    # one by another process.
    gateway.sql(
        "UPDATE account_balances SET spent_pusd = credits_pusd + 1 WHERE account_id = :a", a=record["account_id"]
    )
    time.sleep(OTHER_PROCESS_CHANGE_SEEN_S)
    refused = post(gateway, record["key"], {"model": "acme/free-echo", "messages": MSG})
    assert refused.status_code == 402 and "negative" in refused.json()["error"]["message"]
    gateway.cli("credits", "grant", "--account", "debtor@example.com", "--amount", "1")
    time.sleep(OTHER_PROCESS_CHANGE_SEEN_S)
    assert post(gateway, record["key"], {"model": "acme/free-echo", "messages": MSG}).status_code == 200


def test_a_key_limit_refuses_past_its_period_budget_and_reports_what_remains(gateway):
    limit_usd = 0.0002  # about one long-100 answer (150.5 microdollars) per day
    record = gateway.create_key(
        name="limited",
        account="limited@example.com",
        credits="10",
        extra_args=["--limit", str(limit_usd), "--limit-reset", "daily"],
    )
    key = record["key"]
    body = {"model": "acme/long-100", "messages": MSG, "max_tokens": 100}
    first = post(gateway, key, body)
    assert first.status_code == 200
    cost = first.json()["usage"]["cost"]
    info = get(gateway, key, "key")
    assert info["limit"] == limit_usd and info["limit_reset"] == "daily"
    assert pusd(info["usage_daily"]) == pusd(cost) == pusd(info["usage"])
    assert pusd(info["limit_remaining"]) == pusd(limit_usd) - pusd(cost)
    refused = post(gateway, key, body)
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["metadata"]["limit_source"] == "key" and "higher daily limit" in error["message"]
    # Another key of the same account is not held back by this key's limit.
    other = gateway.create_key(name="unlimited", account="limited@example.com", credits=None)["key"]
    assert post(gateway, other, body).status_code == 200
