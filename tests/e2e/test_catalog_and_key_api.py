"""GET /models, /models/{author}/{slug}/endpoints, /key, /auth/key, /healthz, /readyz."""

from __future__ import annotations

import requests


def test_models_lists_only_routable_models_in_openrouter_shape(http):
    body = http.get("models").json()
    ids = {model["id"] for model in body["data"]}
    assert "acme/mock-model" in ids
    assert "openai/gpt-4o" not in ids  # no OPENAI_API_KEY in the gateway's environment
    assert body["total_count"] == len(body["data"])
    model = next(m for m in body["data"] if m["id"] == "acme/mock-model")
    assert model["pricing"]["prompt"] == "0.0000005" and model["pricing"]["completion"] == "0.0000015"
    assert model["context_length"] == 8192
    assert model["links"]["details"] == "/api/v1/models/acme/mock-model/endpoints"


def test_include_unavailable_shows_the_builtin_catalog(http):
    ids = {model["id"] for model in http.get("models", params={"include_unavailable": "true"}).json()["data"]}
    assert {"openai/gpt-4o", "anthropic/claude-sonnet-4.5", "acme/mock-model"} <= ids


def test_v1_alias_serves_the_same_routes(gateway):
    a = requests.get(f"{gateway.root_url}/v1/models", timeout=10).json()
    b = requests.get(f"{gateway.root_url}/api/v1/models", timeout=10).json()
    assert a == b


def test_model_endpoints(http):
    data = http.get("models/acme/failover/endpoints").json()["data"]
    assert data["id"] == "acme/failover"
    tags = [endpoint["tag"] for endpoint in data["endpoints"]]
    assert tags == ["acme-bad", "acme"]  # cheapest first
    assert data["endpoints"][0]["pricing"]["prompt"] == "0.0000001"


def test_model_endpoints_for_unknown_model_is_404(http):
    response = http.get("models/acme/nope/endpoints")
    assert response.status_code == 404 and response.json()["error"]["code"] == 404


def test_key_and_legacy_auth_key_describe_the_caller(http, api_key_record):
    for path in ("key", "auth/key"):
        data = http.get(path).json()["data"]
        assert data["label"] == api_key_record["label"]
        assert data["is_management_key"] is False
        assert data["limit"] is None and data["usage"] >= 0


def test_key_usage_grows_after_a_paid_request(http):
    before = http.get("key").json()["data"]["usage"]
    http.post("chat/completions", json={"model": "acme/mock-model", "messages": [{"role": "user", "content": "x"}]})
    deadline_checks = [http.get("key").json()["data"]["usage"] for _ in range(20) if not __import__("time").sleep(0.1)]
    assert max(deadline_checks) > before


def test_health_and_readiness(gateway):
    assert requests.get(f"{gateway.root_url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{gateway.root_url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
