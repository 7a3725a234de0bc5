"""GET /api/v1/admin/endpoints through the real process: admin accounts only (401 / 403 in OpenRouter's
envelope otherwise), and every endpoint's state, uptime, percentiles and ejection after a 503 storm."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

MSG = [{"role": "user", "content": "hi"}]
ADMIN = "ops@example.com"


@pytest.fixture(scope="module")
def admin_key(gateway) -> str:
    created = gateway.cli("accounts", "create", ADMIN, "--admin")
    assert created.returncode == 0, created.stderr
    return str(gateway.create_key(name="ops", account=ADMIN)["key"])


def admin_get(gateway, key: str | None, query: str = "") -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(f"{gateway.base_url}/admin/endpoints{query}", headers=headers, timeout=10)


def by_endpoint(response: requests.Response) -> dict[tuple[str, str], dict]:
    return {(e["model"], e["provider"]): e for e in response.json()["data"]}


def test_no_key_is_401_and_a_non_admin_key_is_403_in_the_envelope(gateway, api_key, management_key):
    missing = admin_get(gateway, None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == 401
    for key in (api_key, management_key):  # neither an inference nor a management key of a normal account
        refused = admin_get(gateway, key)
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == 403 and "admin" in error["message"] and "metadata" in error


def test_every_routable_endpoint_is_listed_healthy_before_traffic(gateway, admin_key):
    response = admin_get(gateway, admin_key)
    assert response.status_code == 200, response.text
    endpoints = by_endpoint(response)
    idle = endpoints[("acme/mock-model", "acme")]
    assert idle["state"] == "ok" and idle["measured"] is False and idle["ejected_until"] is None
    assert ("acme/failover", "acme-bad") in endpoints and ("acme/failover", "acme") in endpoints
    everything = by_endpoint(admin_get(gateway, admin_key, "?include_unavailable=true"))
    assert len(everything) > len(endpoints)  # the built-in catalog's endpoints of unconfigured providers


def test_state_after_a_503_storm(gateway, http, admin_key, fake_upstream):
    # `order` sends every request to the failing endpoint first until its circuit opens (3 failures).
    body = {"model": "acme/failover", "messages": MSG, "stream": True, "provider": {"order": ["acme-bad"]}}
    for _ in range(12):
        response = http.post("chat/completions", json=body, stream=True)
        assert response.status_code == 200
        assert all("error" not in line for line in response.iter_lines(decode_unicode=True))
    assert [r.body["model"] for r in fake_upstream.chat_requests()].count("error-503") == 3
    failing = http.post("chat/completions", json={"model": "acme/error-500", "messages": MSG})
    assert failing.status_code == 502
    before = datetime.now(UTC)
    endpoints = by_endpoint(admin_get(gateway, admin_key))
    bad, good = endpoints[("acme/failover", "acme-bad")], endpoints[("acme/failover", "acme")]
    print(json.dumps(bad), json.dumps(good))
    assert bad["state"] == "ejected" and bad["measured"] and bad["uptime_last_30m"] == 0
    until = datetime.fromisoformat(bad["ejected_until"])
    assert before < until <= before + timedelta(seconds=31)  # first ejection: 30 s
    assert good["state"] == "ok" and good["uptime_last_30m"] == 100 and good["ejected_until"] is None
    assert good["ttft_ms"]["p50"] > 0 and good["latency_ms"]["p99"] >= good["latency_ms"]["p50"] > 0
    assert set(good["ttft_ms"]) == {"p50", "p75", "p90", "p99"} and good["consecutive_failures"] == 0
    degraded = endpoints[("acme/error-500", "acme")]
    assert degraded["state"] == "degraded" and degraded["consecutive_failures"] == 1
    # /readyz details still show the unhealthy ones.
    ready = requests.get(f"{gateway.root_url}/readyz", timeout=10).json()
    states = {(e["model"], e["provider"]): e["state"] for e in ready["endpoints"]}
    assert states[("acme/failover", "acme-bad")] == "ejected" and states[("acme/error-500", "acme")] == "degraded"
