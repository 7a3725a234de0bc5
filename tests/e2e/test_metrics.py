"""GET /metrics: Prometheus text that prometheus_client parses, counters equal to the traffic sent,
with one worker and with two; request ids on every response and in every error envelope."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.conftest import E2E_TIMEOUTS
from tests.support.gateway import UPSTREAM_KEY_ENV, GatewayProcess, acme_config_toml

METRICS_TOKEN = "metrics-token-for-tests-0123456789"
MSG = [{"role": "user", "content": "hi"}]
OK, STREAMED, UNKNOWN_MODEL, BAD_KEY = 12, 6, 3, 4


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def metrics_gateway(request, fake_upstream, tmp_path_factory) -> Iterator[GatewayProcess]:
    workers = request.param
    env = {UPSTREAM_KEY_ENV: fake_upstream.api_key, "POLYROUTE_METRICS_TOKEN": METRICS_TOKEN, **E2E_TIMEOUTS}
    process = GatewayProcess(
        tmp_path_factory.mktemp(f"metrics-{workers}"), acme_config_toml(fake_upstream.base_url), env
    )
    if workers > 1:
        process.extra_args = ["--workers", str(workers)]
    with process:
        yield process


def scrape(gateway: GatewayProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(
        f"{gateway.root_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _traffic(gateway: GatewayProcess, key: str) -> None:
    url = f"{gateway.base_url}/chat/completions"
    auth = {"Authorization": f"Bearer {key}"}

    def ok(_: int) -> int:
        return requests.post(
            url, json={"model": "acme/mock-model", "messages": MSG}, headers=auth, timeout=30
        ).status_code

    def streamed(_: int) -> int:
        body = {"model": "acme/mock-model", "messages": MSG, "stream": True}
        with requests.post(url, json=body, headers=auth, timeout=30, stream=True) as response:
            assert b"[DONE]" in response.content
            return response.status_code

    def unknown(_: int) -> int:
        return requests.post(url, json={"model": "acme/nope", "messages": MSG}, headers=auth, timeout=30).status_code

    def bad_key(_: int) -> int:
        headers = {"Authorization": "Bearer sk-or-v1-not-a-real-key-000000000000"}
        return requests.post(
            url, json={"model": "acme/mock-model", "messages": MSG}, headers=headers, timeout=30
        ).status_code

    with ThreadPoolExecutor(4) as pool:  # concurrent connections, so both workers get some
        assert set(pool.map(ok, range(OK))) == {200}
        assert set(pool.map(streamed, range(STREAMED))) == {200}
        assert set(pool.map(unknown, range(UNKNOWN_MODEL))) == {404}
        assert set(pool.map(bad_key, range(BAD_KEY))) == {401}


def test_metrics_counters_match_the_requests_sent(metrics_gateway):
    key = metrics_gateway.create_key(name="metrics")["key"]
    before = scrape(metrics_gateway)
    _traffic(metrics_gateway, key)
    route = "/api/v1/chat/completions"
    for _ in range(3):  # with two workers, successive scrapes may be answered by either: all must agree
        after = scrape(metrics_gateway)

        def delta(name, after=after, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        requests_total = "polyroute_http_requests_total"
        assert delta(requests_total, route=route, method="POST", status="200") == OK + STREAMED
        assert delta(requests_total, route=route, method="POST", status="404") == UNKNOWN_MODEL
        assert delta(requests_total, route=route, method="POST", status="401") == BAD_KEY
        chat = "polyroute_chat_requests_total"
        assert delta(chat, model="acme/mock-model", provider="acme", outcome="ok") == OK + STREAMED
        assert delta("polyroute_tokens_total", model="acme/mock-model", provider="acme", direction="completion") > 0
        assert delta("polyroute_cost_usd_total", model="acme/mock-model", provider="acme") > 0
        assert delta("polyroute_time_to_first_token_seconds_count", provider="acme") == STREAMED
        assert delta("polyroute_generation_latency_seconds_count", provider="acme") == OK + STREAMED
        assert delta("polyroute_gateway_overhead_seconds_count") == OK + STREAMED
        assert value(after, "polyroute_streams_in_flight") == 0
        assert value(after, "polyroute_ledger_open_reservations") == 0


def test_metrics_needs_the_operator_token(metrics_gateway):
    url = f"{metrics_gateway.root_url}/metrics"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert wrong.status_code == 401 and METRICS_TOKEN not in wrong.text


def test_metrics_is_not_served_without_a_token(gateway):
    response = requests.get(f"{gateway.root_url}/metrics", timeout=10)
    assert response.status_code == 404


def test_every_response_carries_a_request_id_and_errors_include_it(gateway, api_key):
    health = requests.get(f"{gateway.root_url}/healthz", timeout=10)
    assert health.headers["x-request-id"].startswith("req-")
    models = requests.get(f"{gateway.base_url}/models", timeout=10)
    assert models.headers["x-request-id"] != health.headers["x-request-id"]
    missing = requests.get(f"{gateway.base_url}/no-such-route", timeout=10)
    assert missing.json()["error"]["metadata"]["request_id"] == missing.headers["x-request-id"]
    bad = requests.post(
        f"{gateway.base_url}/chat/completions", data=b"{", headers={"Authorization": f"Bearer {api_key}"}, timeout=10
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["metadata"]["request_id"] == bad.headers["x-request-id"]


def test_a_sane_incoming_request_id_is_kept_and_a_hostile_one_replaced(gateway):
    kept = requests.get(f"{gateway.root_url}/healthz", headers={"X-Request-Id": "lb-7f3a9c2e11"}, timeout=10)
    assert kept.headers["x-request-id"] == "lb-7f3a9c2e11"
    hostile = requests.get(f"{gateway.root_url}/healthz", headers={"X-Request-Id": 'x" injected=1 {'}, timeout=10)
    assert hostile.headers["x-request-id"].startswith("req-")


def test_access_log_line_is_json_with_request_id_and_generation_fields(gateway, api_key):
    response = requests.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "acme/mock-model", "messages": MSG},
        headers={"Authorization": f"Bearer {api_key}", "X-Request-Id": "trace-access-line-1"},
        timeout=30,
    )
    assert response.status_code == 200
    import json
    import time

    for _ in range(50):
        lines = [line for line in Path(gateway.log_path).read_text().splitlines() if "trace-access-line-1" in line]
        if lines:
            break
        time.sleep(0.1)
    assert lines, gateway.log_tail()
    entry = json.loads(lines[-1])
    assert entry["logger"] == "polyroute.access" and entry["status"] == 200
    assert entry["model"] == "acme/mock-model" and entry["provider"] == "acme"
    assert entry["completion_tokens"] > 0 and entry["cost_pusd"] > 0 and len(entry["key_hash_prefix"]) == 12
    assert api_key not in lines[-1]
