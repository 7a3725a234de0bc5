"""End to end per dialect: the real gateway process, configured with `type = "anthropic" | "gemini" |
"bedrock"` providers pointing at the fakes, answers OpenAI clients; every response and chunk is
checked against OpenRouter's OpenAPI contract.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.support.contract import ContractSession, default_checker, validating_http_client
from tests.support.gateway import GatewayProcess

DIALECTS = ("anthropic", "gemini", "bedrock")
# Upstream ids per dialect: Bedrock's name their vendor, and its Claude models are the ones that reason.
PREFIX = {"anthropic": "", "gemini": "", "bedrock": "us.anthropic."}
SCENARIOS = ("mock-model", "tool-model", "cut-after-2", "error-429", "error-503", "error-529")
PARAMETERS = '["max_tokens", "temperature", "stop", "tools", "tool_choice", "response_format", "reasoning"]'
HELLO = [{"role": "user", "content": "hello big world"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip


def model_toml(model_id: str, endpoints: list[tuple[str, str]]) -> str:
    lines = ["[[models]]", f'id = "{model_id}"', f'name = "Conf: {model_id}"', "context_length = 8192",
             f"supported_parameters = {PARAMETERS}", 'input_modalities = ["text", "image"]']  # fmt: skip
    for provider, upstream_id in endpoints:
        lines += ["[[models.endpoints]]", f'provider = "{provider}"', f'upstream_id = "{upstream_id}"',
                  'prompt_price = "1"', 'completion_price = "2"']  # fmt: skip
    return "\n".join(lines) + "\n"


def config_toml(anthropic_fake: Any, gemini_fake: Any, bedrock_fake: Any) -> str:
    parts = [
        f'[providers.fake-anthropic]\ntype = "anthropic"\nbase_url = "{anthropic_fake.base_url}"\n'
        'api_key_env = "FAKE_ANTHROPIC_KEY"\nname = "Fake Anthropic"\n',
        f'[providers.fake-gemini]\ntype = "gemini"\nbase_url = "{gemini_fake.base_url}"\n'
        'api_key_env = "FAKE_GEMINI_KEY"\nname = "Fake Gemini"\n',
        f'[providers.fake-bedrock]\ntype = "bedrock"\nbase_url = "{bedrock_fake.base_url}"\n'
        f'region = "{bedrock_fake.region}"\nname = "Fake Bedrock"\n',
    ]
    for dialect in DIALECTS:
        for scenario in SCENARIOS:
            parts.append(model_toml(f"conf/{dialect}-{scenario}", [(f"fake-{dialect}", PREFIX[dialect] + scenario)]))
    # Bedrock's endpoint is cheaper, so it is tried first; its 503 fails over to Anthropic's.
    parts.append(model_toml("conf/cross-dialect", [("fake-bedrock", "error-503"), ("fake-anthropic", "mock-model")]))
    parts[-1] = parts[-1].replace('prompt_price = "1"', 'prompt_price = "0.5"', 1)
    return "\n".join(parts)


@pytest.fixture(scope="module")
def gateway(
    anthropic_fake: Any, gemini_fake: Any, bedrock_fake: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    env = {
        "FAKE_ANTHROPIC_KEY": anthropic_fake.api_key,
        "FAKE_GEMINI_KEY": gemini_fake.api_key,
        **bedrock_fake.env,
        "POLYROUTE_FIRST_BYTE_TIMEOUT_S": "5",
        "POLYROUTE_IDLE_TIMEOUT_S": "2",
        "POLYROUTE_KEEPALIVE_S": "1",
    }
    workdir: Path = tmp_path_factory.mktemp("gateway-dialects")
    with GatewayProcess(workdir, config_toml(anthropic_fake, gemini_fake, bedrock_fake), env) as process:
        yield process


@pytest.fixture(scope="module")
def api_key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key(name="dialects")["key"])


@pytest.fixture
def client(gateway: GatewayProcess, api_key: str) -> Iterator[openai.OpenAI]:
    http_client = validating_http_client(default_checker())
    with openai.OpenAI(base_url=gateway.base_url, api_key=api_key, http_client=http_client, max_retries=0,
                       timeout=30) as sdk:  # fmt: skip
        yield sdk


@pytest.fixture
def http(gateway: GatewayProcess, api_key: str) -> Iterator[ContractSession]:
    with ContractSession(gateway.base_url, api_key, default_checker()) as session:
        yield session


@pytest.mark.parametrize("dialect", DIALECTS)
def test_completion_with_usage_and_cost(client: openai.OpenAI, dialect: str) -> None:
    reply = client.chat.completions.create(model=f"conf/{dialect}-mock-model", messages=HELLO, max_tokens=50)
    assert reply.choices[0].message.content == "Echo: hello big world"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.model_extra or {})["provider"] == f"Fake {dialect.title()}"
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 4)
    assert (reply.usage.model_extra or {})["cost"] == pytest.approx((3 * 1 + 4 * 2) / 1e6)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_streamed_tool_call_is_reassembled_by_the_openai_sdk(client: openai.OpenAI, dialect: str) -> None:
    with client.chat.completions.stream(model=f"conf/{dialect}-tool-model", messages=HELLO, tools=[WEATHER]) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "test"}  # type: ignore[union-attr]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reasoning_comes_back_in_openrouters_fields(http: ContractSession, dialect: str) -> None:
    body = {
        "model": f"conf/{dialect}-mock-model",
        "messages": HELLO,
        "max_tokens": 3000,
        "reasoning": {"effort": "low"},
    }
    message = http.post("chat/completions", json=body).json()["choices"][0]["message"]
    assert message["reasoning"] == "Thinking about: hello big world"
    assert message["reasoning_details"][0]["type"] == "reasoning.text"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_image_part_reaches_the_model(client: openai.OpenAI, dialect: str) -> None:
    content = [{"type": "text", "text": "what is it"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]  # fmt: skip
    reply = client.chat.completions.create(
        model=f"conf/{dialect}-mock-model", messages=[{"role": "user", "content": content}]
    )
    assert reply.choices[0].message.content == "Echo: what is it"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_stream_cut_after_content_ends_with_an_error_chunk(http: ContractSession, dialect: str) -> None:
    body = {"model": f"conf/{dialect}-cut-after-2", "messages": HELLO, "stream": True}
    response = http.post("chat/completions", json=body, stream=True)
    events = [line[6:] for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert response.status_code == 200 and events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["error"]["code"] == 502 and last["choices"][0]["finish_reason"] == "error"
    pieces = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-2] if json.loads(e)["choices"]]
    assert "".join(p for p in pieces if p) == "w0 w1"


@pytest.mark.parametrize(("dialect", "retry_after"), [("anthropic", "1"), ("gemini", "1"), ("bedrock", None)])
def test_rate_limits_are_429_with_the_upstreams_retry_hint(http: ContractSession, dialect: str, retry_after) -> None:
    response = http.post("chat/completions", json={"model": f"conf/{dialect}-error-429", "messages": HELLO})
    assert response.status_code == 429
    assert response.headers.get("Retry-After") == retry_after
    assert response.json()["error"]["metadata"]["provider_name"] == f"Fake {dialect.title()}"


def test_anthropic_overloaded_529_is_a_502_envelope_with_the_raw_error(http: ContractSession) -> None:
    response = http.post("chat/completions", json={"model": "conf/anthropic-error-529", "messages": HELLO})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["message"] == "Provider returned error"
    assert error["metadata"]["provider_name"] == "Fake Anthropic" and "overloaded_error" in error["metadata"]["raw"]


def test_a_failing_bedrock_endpoint_fails_over_to_anthropic(http: ContractSession, bedrock_fake: Any) -> None:
    bedrock_fake.clear()
    # sort=price: the cheaper, failing Bedrock endpoint first every time (load balancing would draw it).
    body = {"model": "conf/cross-dialect", "messages": HELLO, "provider": {"sort": "price"}}
    reply = http.post("chat/completions", json=body).json()
    assert reply["choices"][0]["message"]["content"] == "Echo: hello big world"
    assert reply["provider"] == "Fake Anthropic"
    assert [r.path for r in bedrock_fake.converse_requests()] == ["/model/error-503/converse"]
    assert not bedrock_fake.signature_failures  # the gateway's SigV4 signature was accepted
