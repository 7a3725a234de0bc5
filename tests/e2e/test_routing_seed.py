"""POLYROUTE_ROUTING_SEED: fresh gateway processes with the same seed and the same traffic pick the same
endpoint sequence through the 1/price² load balancer; another seed picks another sequence."""

from __future__ import annotations

import json

import pytest
import requests
from tests.support.gateway import UPSTREAM_KEY_ENV, _model_toml, acme_config_toml

MSG = [{"role": "user", "content": "hi"}]
REQUESTS = 24
# Prices close together so the draw really varies: weights 1, 0.69, 0.44 for acme, acme-2, acme-3.
BALANCED = [("acme", "mock-model", "1.00", "1.00"), ("acme-2", "mock-model", "1.20", "1.20")]
BALANCED += [("acme-3", "mock-model", "1.50", "1.50")]


@pytest.fixture(scope="module")
def gateway_config(fake_upstream):
    section = '[providers.{}]\ntype = "openai"\nbase_url = "{}"\napi_key_env = "{}"\n'
    extra = "".join(section.format(slug, fake_upstream.base_url, UPSTREAM_KEY_ENV) for slug in ("acme-2", "acme-3"))
    return acme_config_toml(fake_upstream.base_url, extra_toml=extra + _model_toml("acme/balanced", BALANCED))


def served_sequence(gateway) -> list[str]:
    key = gateway.create_key(name="seed")["key"]
    providers = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {key}"
        for i in range(REQUESTS):
            body = {"model": "acme/balanced", "messages": MSG, "stream": i % 3 == 0}
            response = session.post(f"{gateway.base_url}/chat/completions", json=body, timeout=30)
            assert response.status_code == 200, response.text
            if body["stream"]:
                first = next(line for line in response.text.splitlines() if line.startswith("data: {"))
                providers.append(json.loads(first[6:])["provider"])
            else:
                providers.append(response.json()["provider"])
    gateway.stop()
    return providers


def test_the_same_seed_gives_the_same_endpoint_sequence_and_another_seed_another(gateway_factory):
    first = served_sequence(gateway_factory(env={"POLYROUTE_ROUTING_SEED": "7"}))
    again = served_sequence(gateway_factory(env={"POLYROUTE_ROUTING_SEED": "7"}))
    other = served_sequence(gateway_factory(env={"POLYROUTE_ROUTING_SEED": "8"}))
    print(f"seed 7: {first}\nseed 8: {other}")
    assert len(set(first)) == 3  # the draw matters: every endpoint was picked at least once
    assert again == first
    assert other != first
