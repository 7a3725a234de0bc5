"""The server as a process: start-up checks, workers, presets, disconnects, and hostile input."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.gateway import clean_env

MSG = [{"role": "user", "content": "hi"}]


def test_a_bad_config_stops_the_start_naming_file_key_and_reason(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[providers.acme]\ntype = "telepathy"\nbase_url = "http://127.0.0.1:1/v1"\n')
    result = subprocess.run(
        [sys.executable, "-m", "polyroute", "serve", "--port", "1", "--config", str(config)],
        env=clean_env({"POLYROUTE_DATA_DIR": str(tmp_path / "data")}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert str(config) in result.stderr and "providers.acme.type" in result.stderr
    assert "Traceback" not in result.stderr


def test_client_disconnect_closes_the_upstream_within_a_second(gateway, api_key, fake_upstream):
    before = len(fake_upstream.disconnects)
    # Leave once the second content token arrived: the upstream is now stalled.
    body = {"model": "acme/stall-after-2", "messages": MSG, "stream": True}
    _, closed_at = gateway.stream_then_leave(api_key, body, b"w1")
    deadline = closed_at + 1.0
    while len(fake_upstream.disconnects) == before and time.monotonic() < deadline + 1:
        time.sleep(0.01)
    assert len(fake_upstream.disconnects) > before, "the upstream connection stayed open"
    assert fake_upstream.disconnects[-1] - closed_at < 1.0
    for _ in range(50):
        rows = [r for r in gateway.generations() if r["model"] == "acme/stall-after-2" and r["status"] == "cancelled"]
        if rows:
            break
        time.sleep(0.1)
    assert rows and rows[-1]["completion_tokens"] >= 1


def test_two_workers_serve_requests(gateway_factory):
    gw = gateway_factory()
    gw.stop()
    gw.extra_args = ["--workers", "2"]
    gw.start()
    assert len(gw.child_pids()) >= 2
    key = gw.create_key(name="w", account="w@example.com")["key"]
    for _ in range(20):
        response = requests.post(
            f"{gw.base_url}/chat/completions",
            json={"model": "acme/mock-model", "messages": MSG},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert response.status_code == 200


def test_a_preset_turns_on_when_its_key_is_set(gateway_factory, fake_upstream):
    gw = gateway_factory(env={"OPENAI_API_KEY": fake_upstream.api_key, "OPENAI_BASE_URL": fake_upstream.base_url})
    ids = {m["id"] for m in requests.get(f"{gw.base_url}/models", timeout=10).json()["data"]}
    assert "openai/gpt-4o" in ids
    key = gw.create_key(name="p", account="p@example.com")["key"]
    requests.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "openai/gpt-4o", "messages": MSG},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    sent = fake_upstream.chat_requests()[-1]
    assert sent.body["model"] == "gpt-4o"
    assert sent.headers["authorization"] == f"Bearer {fake_upstream.api_key}"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["model", "messages", "stream", "max_tokens", "temperature", "tools", "tool_choice", "stop", "models", "provider"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(FIELDS, JSON_VALUES, max_size=6) | JSON_VALUES)
def test_hostile_bodies_never_get_a_500(gateway, api_key, body):
    response = requests.post(
        f"{gateway.base_url}/chat/completions",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        timeout=15,
    )
    assert response.status_code < 500 or response.json()["error"]["message"] == "Provider returned error"
    assert "error" in response.json() or response.status_code == 200
