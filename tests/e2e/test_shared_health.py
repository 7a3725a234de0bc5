"""Endpoint health shared through Redis by two gateway processes: failures driven through the first make
the second route around the failing endpoint without ever calling it, and show in its endpoint stats."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests
from tests.support.gateway import GatewayProcess, _model_toml, acme_config_toml, free_port
from tests.support.redis_server import delete_prefix, shared_redis_url, unique_prefix

MSG = [{"role": "user", "content": "hi"}]
# acme-bad is 5x cheaper: the load balancer picks it ~96 % of the time while it looks healthy.
SHARED = [("acme-bad", "error-503", "0.10", "0.30"), ("acme", "mock-model", "0.50", "1.50")]


@pytest.fixture(scope="module")
def gateway_config(fake_upstream):
    return acme_config_toml(fake_upstream.base_url, extra_toml=_model_toml("acme/shared", SHARED))


@pytest.fixture
def pair(gateway_factory: Callable[..., GatewayProcess]) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    redis_url = shared_redis_url()
    prefix = unique_prefix()
    env = {"POLYROUTE_REDIS_URL": redis_url, "POLYROUTE_REDIS_PREFIX": prefix}
    first, second = gateway_factory(env=env), gateway_factory(env=env)
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
        delete_prefix(redis_url, prefix)


def session_for(gateway: GatewayProcess) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {gateway.create_key(name='health')['key']}"
    return session


def endpoints(gateway: GatewayProcess, session: requests.Session) -> dict[str, dict]:
    data = session.get(f"{gateway.base_url}/models/acme/shared/endpoints", timeout=10).json()["data"]
    return {e["tag"]: e for e in data["endpoints"]}


def test_failures_through_one_process_steer_the_other_around_the_endpoint(pair, fake_upstream):
    first, second = pair
    on_first, on_second = session_for(first), session_for(second)
    # Through the first process only: `order` sends each request to acme-bad first (503, then acme serves).
    body = {"model": "acme/shared", "messages": MSG, "provider": {"order": ["acme-bad"]}}
    for _ in range(3):
        response = on_first.post(f"{first.base_url}/chat/completions", json=body, timeout=30)
        assert response.status_code == 200 and response.json()["provider"] == "acme"
    driven_at = time.monotonic()
    # The second process learns of the ejection within about a second, without calling acme-bad itself.
    while endpoints(second, on_second)["acme-bad"]["status"] != -2:
        assert time.monotonic() - driven_at < 2.0, endpoints(second, on_second)
        time.sleep(0.02)
    took_ms = 1000 * (time.monotonic() - driven_at)
    print(f"ejection visible on the second process {took_ms:.0f} ms after the third failure")
    assert [r.body["model"] for r in fake_upstream.chat_requests()].count("error-503") == 3
    fake_upstream.clear()
    for i in range(20):
        body = {"model": "acme/shared", "messages": MSG, "stream": bool(i % 2)}
        response = on_second.post(f"{second.base_url}/chat/completions", json=body, timeout=30)
        assert response.status_code == 200, response.text
    called = [r.body["model"] for r in fake_upstream.chat_requests()]
    assert called == ["mock-model"] * 20  # never the failing endpoint
    # The second process's endpoint stats hold the first one's samples too: 3 failures, 3 + 20 successes.
    stats = endpoints(second, on_second)
    assert stats["acme-bad"]["uptime_last_30m"] == 0
    assert stats["acme"]["uptime_last_30m"] == 100 and stats["acme"]["latency_last_30m"] is not None
    ready = requests.get(f"{second.root_url}/readyz", timeout=10).json()
    assert {"model": "acme/shared", "provider": "acme-bad", "state": "ejected"} in [
        {k: e[k] for k in ("model", "provider", "state")} for e in ready["endpoints"]
    ]


def test_with_redis_down_a_process_routes_on_its_own_stats_and_logs_it_once(gateway_factory, fake_upstream):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    alone = gateway_factory(env={"POLYROUTE_REDIS_URL": dead, "POLYROUTE_REDIS_PREFIX": unique_prefix()})
    session = session_for(alone)
    for i in range(10):
        body = {"model": "acme/shared", "messages": MSG, "stream": bool(i % 2)}
        response = session.post(f"{alone.base_url}/chat/completions", json=body, timeout=30)
        assert response.status_code == 200, response.text
    time.sleep(0.5)  # a few flush attempts more
    called = [r.body["model"] for r in fake_upstream.chat_requests()]
    assert called.count("error-503") == 1 and called.count("mock-model") == 10  # its own failure steered it
    stats = endpoints(alone, session)
    assert stats["acme-bad"]["status"] == -1 and stats["acme"]["uptime_last_30m"] == 100
    log = alone.log_path.read_text()
    assert log.count("endpoint stats not shared through Redis") == 1, log[-3000:]
