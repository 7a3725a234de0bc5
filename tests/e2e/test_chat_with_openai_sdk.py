"""The official `openai` SDK against the real gateway: sync, async, streaming and tools."""

from __future__ import annotations

import json

import pytest

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def test_sync_completion_reports_provider_model_usage_and_cost(openai_client, fake_upstream):
    reply = openai_client.chat.completions.create(
        model="acme/mock-model",
        messages=[{"role": "user", "content": "hello there"}],
        temperature=0.3,
        max_tokens=50,
    )
    assert reply.id.startswith("gen-")
    assert reply.model == "acme/mock-model"
    assert reply.choices[0].message.content == "Echo: hello there"
    assert reply.choices[0].finish_reason == "stop"
    extra = reply.model_extra or {}
    assert extra["provider"] == "acme"
    assert reply.usage is not None and reply.usage.total_tokens == reply.usage.prompt_tokens + 3
    # 0.50 / 1.50 USD per million tokens, counted by the fake as words.
    expected = (reply.usage.prompt_tokens * 0.5 + reply.usage.completion_tokens * 1.5) / 1e6
    assert (reply.usage.model_extra or {})["cost"] == pytest.approx(expected)
    sent = fake_upstream.chat_requests()[-1]
    assert sent.body["model"] == "mock-model" and sent.body["temperature"] == 0.3
    assert sent.headers["authorization"] == f"Bearer {fake_upstream.api_key}"


async def test_async_completion(async_openai_client):
    reply = await async_openai_client.chat.completions.create(
        model="acme/mock-model", messages=[{"role": "user", "content": "async works"}]
    )
    assert reply.choices[0].message.content == "Echo: async works"


def test_streaming_delivers_text_then_usage(openai_client, contract_checker):
    checked_before = contract_checker.counts["chunk"]
    stream = openai_client.chat.completions.create(
        model="acme/mock-model", messages=[{"role": "user", "content": "stream me please"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me please"
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert (chunks[-1].usage.model_extra or {})["cost"] > 0
    # Every chunk went through the OpenAPI contract checker on its way to the SDK.
    assert contract_checker.counts["chunk"] - checked_before == len(chunks)


async def test_async_streaming(async_openai_client):
    stream = await async_openai_client.chat.completions.create(
        model="acme/mock-model", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: a b c"


def test_tool_call_round_trip(openai_client, fake_upstream):
    reply = openai_client.chat.completions.create(
        model="acme/tool-model",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=TOOLS,
        tool_choice="auto",
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    json.loads(call.function.arguments)
    assert fake_upstream.chat_requests()[-1].body["tools"] == TOOLS


def test_streamed_tool_call_keeps_indexes_and_arguments(openai_client):
    with openai_client.chat.completions.stream(
        model="acme/tool-model", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
    assert final.choices[0].finish_reason == "tool_calls"


def test_multipart_content_and_stop_are_passed_through(openai_client, fake_upstream):
    content = [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]
    openai_client.chat.completions.create(
        model="acme/mock-model", messages=[{"role": "user", "content": content}], stop=["zzz"], seed=7
    )
    body = fake_upstream.chat_requests()[-1].body
    assert body["messages"][0]["content"] == content
    assert body["stop"] == ["zzz"] and body["seed"] == 7


def test_fallback_endpoint_serves_when_the_cheaper_one_fails(openai_client):
    reply = openai_client.chat.completions.create(
        model="acme/failover", messages=[{"role": "user", "content": "still here"}]
    )
    assert reply.choices[0].message.content == "Echo: still here"
    assert (reply.model_extra or {})["provider"] == "acme"


def test_models_fallback_list_is_tried_in_order(openai_client):
    reply = openai_client.chat.completions.create(
        model="acme/error-500",
        messages=[{"role": "user", "content": "fallback"}],
        extra_body={"models": ["acme/mock-model"]},
    )
    assert reply.model == "acme/mock-model"


def test_max_tokens_cut_is_reported_as_length(openai_client):
    reply = openai_client.chat.completions.create(
        model="acme/mock-model", messages=[{"role": "user", "content": "one two three four five"}], max_tokens=2
    )
    assert reply.choices[0].finish_reason == "length"
    assert (reply.choices[0].model_extra or {})["native_finish_reason"] == "length"
