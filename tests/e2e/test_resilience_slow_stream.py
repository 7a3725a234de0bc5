"""A slow but healthy 10-minute stream is never cut: there is no total cap, only the idle bound.

Marked slow (not in the default run): `pytest -m slow tests/e2e/test_resilience_slow_stream.py`.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from tests.support.gateway import acme_config_toml

MSG = [{"role": "user", "content": "hi"}]
# One token per second (the fake's drip interval) against a 2 s idle timeout: 10 minutes.
TOKENS = int(os.environ.get("SLOW_STREAM_TOKENS", "600"))


@pytest.fixture(scope="module")
def gateway_config(fake_upstream):
    return acme_config_toml(fake_upstream.base_url, [f"drip-{TOKENS}"])


@pytest.fixture(scope="module")
def database_kind():
    return "sqlite"


@pytest.mark.slow
@pytest.mark.timeout(TOKENS * 1.5 + 120)  # the suite's 120 s per-test cap would cut it
def test_a_ten_minute_slow_healthy_stream_is_not_cut(http):
    started = time.monotonic()
    response = http.post(
        "chat/completions", json={"model": f"acme/drip-{TOKENS}", "messages": MSG, "stream": True}, stream=True
    )
    events = [line[6:] for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert not any("error" in c for c in chunks)
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([p for p in pieces if p]) == TOKENS
    assert time.monotonic() - started >= (TOKENS - 1) * 0.9
