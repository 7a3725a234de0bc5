"""Operator-configured model fallbacks through the real process: a cycle refuses the start, a configured
fallback serves when the primary fails (and says so), and a request's own 4xx is never retried on another
endpoint of the same model but moves on to the fallback model (OpenRouter: context length errors do)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.support.gateway import _model_toml, acme_config_toml, clean_env

MSG = [{"role": "user", "content": "hi"}]


def with_fallbacks(model_id: str, endpoints: list[tuple[str, str, str, str]], fallbacks: list[str]) -> str:
    listed = ", ".join(f'"{f}"' for f in fallbacks)
    head = "context_length = 8192\n"
    return _model_toml(model_id, endpoints).replace(head, f"{head}fallbacks = [{listed}]\n", 1)


FALLBACK_MODELS = "".join(
    [
        with_fallbacks("acme/primary", [("acme", "error-500", "0.10", "0.30")], ["acme/secondary"]),
        with_fallbacks("acme/secondary", [("acme", "error-503", "0.10", "0.30")], ["acme/backup"]),
        _model_toml("acme/backup", [("acme", "mock-model", "0.50", "1.50")]),
        # A request fault on the cheaper endpoint: the model's other endpoint is not called, the fallback is.
        with_fallbacks(
            "acme/rejects",
            [("acme-bad", "error-400", "0.10", "0.30"), ("acme", "mock-model", "0.50", "1.50")],
            ["acme/backup"],
        ),
    ]
)


@pytest.fixture(scope="module")
def gateway_config(fake_upstream):
    return acme_config_toml(fake_upstream.base_url, extra_toml=FALLBACK_MODELS)


def upstream_models(fake_upstream):
    return [r.body["model"] for r in fake_upstream.chat_requests()]


def test_a_fallback_cycle_stops_the_start_naming_file_key_and_cycle(tmp_path, fake_upstream):
    cycle = "".join(
        [
            with_fallbacks("acme/x", [("acme", "mock-model", "0.50", "1.50")], ["acme/y"]),
            with_fallbacks("acme/y", [("acme", "mock-model", "0.50", "1.50")], ["acme/z"]),
            with_fallbacks("acme/z", [("acme", "mock-model", "0.50", "1.50")], ["acme/x"]),
        ]
    )
    config = tmp_path / "cycle.toml"
    config.write_text(acme_config_toml(fake_upstream.base_url, extra_toml=cycle))
    result = subprocess.run(
        [sys.executable, "-m", "polyroute", "serve", "--port", "1", "--config", str(config)],
        env=clean_env({"POLYROUTE_DATA_DIR": str(tmp_path / "data")}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert str(config) in result.stderr and ".fallbacks" in result.stderr
    assert "acme/x → acme/y → acme/z → acme/x" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_configured_fallback_chain_serves_when_the_primary_fails(http, gateway, fake_upstream):
    response = http.post("chat/completions", json={"model": "acme/primary", "messages": MSG})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["model"] == "acme/backup" and data["provider"] == "acme"
    assert upstream_models(fake_upstream) == ["error-500", "error-503", "mock-model"]
    record = next(g for g in gateway.generations() if g["id"] == data["id"])
    usage = data["usage"]
    assert record["model"] == "acme/backup" and record["provider"] == "acme"
    assert record["cost_pusd"] == usage["prompt_tokens"] * 500_000 + usage["completion_tokens"] * 1_500_000


def test_a_configured_fallback_serves_a_stream_and_every_chunk_names_it(http, fake_upstream):
    body = {"model": "acme/primary", "messages": MSG, "stream": True}
    response = http.post("chat/completions", json=body, stream=True)
    lines = [line[6:] for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    chunks = [json.loads(line) for line in lines[:-1]]
    assert response.status_code == 200 and lines[-1] == "[DONE]" and not any("error" in c for c in chunks)
    assert {(c["model"], c["provider"]) for c in chunks} == {("acme/backup", "acme")}


def test_the_requests_own_models_list_replaces_the_configured_chain(http, fake_upstream):
    body = {"models": ["acme/primary", "acme/mock-model"], "messages": MSG}
    response = http.post("chat/completions", json=body)
    assert response.status_code == 200 and response.json()["model"] == "acme/mock-model"
    assert upstream_models(fake_upstream) == ["error-500", "mock-model"]


def test_a_request_fault_skips_the_models_other_endpoints_and_moves_to_the_fallback(http, gateway, fake_upstream):
    body = {"model": "acme/rejects", "messages": MSG, "provider": {"sort": "price"}}
    response = http.post("chat/completions", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["model"] == "acme/backup"
    # acme/rejects' second endpoint (also "mock-model", on provider acme) was never asked.
    assert upstream_models(fake_upstream) == ["error-400", "mock-model"]
    record = next(g for g in gateway.generations() if g["id"] == data["id"])
    assert record["model"] == "acme/backup"
    streamed = http.post("chat/completions", json={**body, "stream": True}, stream=True)
    lines = [line[6:] for line in streamed.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert streamed.status_code == 200 and lines[-1] == "[DONE]"
    assert {json.loads(line)["model"] for line in lines[:-1]} == {"acme/backup"}
    assert upstream_models(fake_upstream) == ["error-400", "mock-model", "error-400", "mock-model"]
