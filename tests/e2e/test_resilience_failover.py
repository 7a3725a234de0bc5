"""Resilience against the fault-injecting fake: 503 storms, Retry-After, silent and stalling upstreams,
preamble-only failures and model fallbacks, through the real gateway process."""

from __future__ import annotations

import json
import time

import pytest
import requests
from tests.support.gateway import _model_toml, acme_config_toml

MSG = [{"role": "user", "content": "hi"}]
FIRST_BYTE_S, IDLE_S = 5.0, 2.0  # E2E_TIMEOUTS in conftest
MODELS = [
    ("acme/limited", [("acme", "error-429", "0.50", "1.50")]),
    ("acme/limited-failover", [("acme-bad", "error-429", "0.10", "0.30"), ("acme", "mock-model", "0.50", "1.50")]),
    ("acme/preamble", [("acme-bad", "preamble-then-500", "0.10", "0.30"), ("acme", "mock-model", "0.50", "1.50")]),
]


@pytest.fixture(scope="module")
def gateway_config(fake_upstream):
    extra = "".join(_model_toml(model_id, endpoints) for model_id, endpoints in MODELS)
    return acme_config_toml(fake_upstream.base_url, ["stall-after-3"], extra)


def chat(http, body, **kwargs):
    return http.post("chat/completions", json=body, **kwargs)


def sse_events(response):
    return [line[6:] for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]


def upstream_models(fake_upstream):
    return [r.body["model"] for r in fake_upstream.chat_requests()]


def test_503_storm_moves_traffic_to_the_next_endpoint_with_few_extra_attempts(http, gateway, fake_upstream):
    clients = 30
    for i in range(clients):
        response = chat(http, {"model": "acme/failover", "messages": MSG, "stream": bool(i % 2)})
        assert response.status_code == 200, response.text
    attempts = upstream_models(fake_upstream)
    print(f"503 storm: {clients} client requests, {len(attempts)} upstream attempts")
    assert len(attempts) <= 1.2 * clients, attempts
    assert attempts.count("mock-model") == clients
    # The storm is visible: endpoint stats and /readyz details.
    endpoints = http.get("models/acme/failover/endpoints").json()["data"]["endpoints"]
    by_tag = {e["tag"]: e for e in endpoints}
    assert by_tag["acme-bad"]["status"] < 0 and by_tag["acme-bad"]["uptime_last_30m"] == 0
    assert by_tag["acme"]["status"] == 0 and by_tag["acme"]["uptime_last_30m"] == 100
    assert by_tag["acme"]["latency_last_30m"]["p50"] >= 0
    ready = requests.get(f"{gateway.root_url}/readyz", timeout=10).json()
    assert {"model": "acme/failover", "provider": "acme-bad"} in [
        {"model": e["model"], "provider": e["provider"]} for e in ready["endpoints"]
    ]


def test_429_retry_after_is_honoured_before_a_retry_and_passed_on(http, fake_upstream):
    started = time.monotonic()
    response = chat(http, {"model": "acme/limited", "messages": MSG})
    elapsed = time.monotonic() - started
    print(f"429 + Retry-After: 1 -> answered after {elapsed:.3f} s")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert upstream_models(fake_upstream) == ["error-429", "error-429"]  # one retry, not a storm
    assert elapsed >= 1.0  # the retry waited for Retry-After: 1


def test_429_endpoint_gets_no_traffic_while_a_fallback_serves(http, fake_upstream):
    for _ in range(5):
        response = chat(http, {"model": "acme/limited-failover", "messages": MSG})
        assert response.status_code == 200 and response.json()["provider"] == "acme"
    assert upstream_models(fake_upstream).count("error-429") == 1


def test_silent_upstream_gives_the_client_an_error_within_first_byte_timeout(http):
    started = time.monotonic()
    response = chat(http, {"model": "acme/slow-8000", "messages": MSG, "stream": True}, stream=True)
    events = sse_events(response)
    elapsed = time.monotonic() - started
    print(f"silent upstream: error after {elapsed:.3f} s (first-byte timeout {FIRST_BYTE_S} s)")
    assert json.loads(events[-2])["error"]["code"] == 502
    assert elapsed < FIRST_BYTE_S + 1.0  # the acceptance bound (measured: about +15 ms)


def test_stall_after_3_tokens_ends_with_an_error_chunk_charged_for_3_tokens(http, gateway):
    response = chat(http, {"model": "acme/stall-after-3", "messages": MSG, "stream": True}, stream=True)
    third_token_at = None
    events = []
    for line in response.iter_lines(decode_unicode=True):
        if not line.startswith("data: "):
            continue
        events.append(line[6:])
        if line != "data: [DONE]" and (json.loads(line[6:]).get("choices") or [{}])[0].get("delta", {}).get("content"):
            third_token_at = time.monotonic()
        if line[6:].startswith('{"') and '"error"' in line:
            error_at = time.monotonic()
    last = json.loads(events[-2])
    print(f"stall after 3 tokens: error chunk {error_at - third_token_at:.3f} s after the 3rd (idle {IDLE_S} s)")
    assert last["choices"][0]["finish_reason"] == "error" and last["error"]["code"] == 502
    assert third_token_at is not None and error_at - third_token_at < IDLE_S + 1.0
    assert last["usage"]["completion_tokens"] == 3
    record = next(g for g in gateway.generations() if g["id"] == last["id"])
    assert record["completion_tokens"] == 3 and record["status"] == "error"
    assert record["cost_pusd"] > 0 and abs(last["usage"]["cost"] - record["cost_pusd"] / 1e12) < 1e-12


def test_preamble_only_then_error_fails_over_transparently(http, fake_upstream):
    # sort=price: the cheaper, failing endpoint first every time (load balancing would pick it ~96%).
    body = {"model": "acme/preamble", "messages": MSG, "stream": True, "provider": {"sort": "price"}}
    response = chat(http, body, stream=True)
    chunks = [json.loads(e) for e in sse_events(response)[:-1]]
    assert response.status_code == 200 and not any("error" in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Echo: hi"
    assert {c["provider"] for c in chunks} == {"acme"}
    assert upstream_models(fake_upstream)[0] == "preamble-then-500"


@pytest.mark.parametrize("legacy_route", [False, True])
def test_model_fallbacks_serve_from_the_next_model_and_charge_only_that_attempt(http, gateway, legacy_route):
    body = {"models": ["acme/error-500", "acme/mock-model"], "messages": MSG}
    if legacy_route:
        body["route"] = "fallback"
    response = chat(http, body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["model"] == "acme/mock-model" and data["provider"] == "acme"
    record = next(g for g in gateway.generations() if g["id"] == data["id"])
    assert record["model"] == "acme/mock-model"
    # 0.50 / 1.50 USD per million: only the served attempt's tokens are charged.
    usage = data["usage"]
    expected = usage["prompt_tokens"] * 500_000 + usage["completion_tokens"] * 1_500_000
    assert record["cost_pusd"] == expected


def test_provider_preferences_reach_routing(http, fake_upstream):
    body = {"model": "acme/failover", "messages": MSG, "provider": {"only": ["acme-bad"], "allow_fallbacks": False}}
    response = chat(http, body)
    assert response.status_code == 502
    bad = chat(http, {"model": "acme/failover", "messages": MSG, "provider": {"sort": "fastest"}})
    assert bad.status_code == 400 and "provider.sort" in bad.json()["error"]["message"]
    none = chat(http, {"model": "acme/failover", "messages": MSG, "provider": {"data_collection": "deny"}})
    assert none.status_code == 404
