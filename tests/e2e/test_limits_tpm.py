"""Tokens per minute (#7): admitted by estimate (prompt estimate + `max_tokens`), then trued up to the
response's real token count, so a key whose answers are shorter than `max_tokens` is admitted again
at once instead of waiting for the estimate to drain.

Each key is limited to 1000 tokens/minute (`keys create --tpm 1000`) and asks `max_tokens: 300`: by
estimate alone only 3 requests fit. `acme/mock-model` answers "Echo: hi" (a few tokens), so after
the correction ten in a row fit; `acme/long-2000` uses all 300, so the fourth is refused.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from tests.support.gateway import GatewayProcess

MAX_TOKENS = 300


def chat(gateway: GatewayProcess, key: str, model: str, stream: bool = False) -> requests.Response:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    }
    headers = {"Authorization": f"Bearer {key}"}
    return requests.post(f"{gateway.base_url}/chat/completions", json=body, headers=headers, timeout=30)


def tpm_key(gateway: GatewayProcess, name: str) -> str:
    created = gateway.create_key(name=name, account=f"{name}@example.com", extra_args=["--tpm", "1000"])
    assert created["tpm"] == 1000
    return str(created["key"])


def test_short_answers_give_back_what_they_did_not_use(gateway: GatewayProcess) -> None:
    key = tpm_key(gateway, "tpm-short")
    replies = [chat(gateway, key, "acme/mock-model") for _ in range(10)]
    assert [reply.status_code for reply in replies] == [200] * 10, replies[-1].text
    used = [reply.json()["usage"]["total_tokens"] for reply in replies]
    assert all(tokens < 20 for tokens in used), used  # far below the 300 asked for


def test_short_streamed_answers_are_corrected_too(gateway: GatewayProcess) -> None:
    key = tpm_key(gateway, "tpm-stream")
    for _ in range(8):
        reply = chat(gateway, key, "acme/mock-model", stream=True)
        assert reply.status_code == 200, reply.text
        events = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["usage"]["total_tokens"] < 20


def test_answers_that_use_max_tokens_keep_their_charge(gateway: GatewayProcess) -> None:
    key = tpm_key(gateway, "tpm-long")
    replies = [chat(gateway, key, "acme/long-2000") for _ in range(4)]
    assert [reply.status_code for reply in replies] == [200, 200, 200, 429], [r.text[:200] for r in replies]
    assert all(reply.json()["usage"]["completion_tokens"] == MAX_TOKENS for reply in replies[:3])
    refused = replies[3]
    assert refused.json()["error"]["message"] == "Rate limit exceeded: key-tokens-per-min."
    assert refused.headers["X-RateLimit-Limit"] == "1000"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
