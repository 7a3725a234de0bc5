"""The Anthropic fake speaks the Messages API: the official `anthropic` SDK parses everything it sends."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropicUpstream

HELLO = [{"role": "user", "content": "hello big world"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicUpstream]:
    with FakeAnthropicUpstream(stall_s=5) as upstream:
        yield upstream


@pytest.fixture
def client(fake: FakeAnthropicUpstream) -> Iterator[anthropic.Anthropic]:
    fake.clear()
    with anthropic.Anthropic(base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=10) as sdk:
        yield sdk


def test_message_echoes_with_word_count_usage(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="mock-model", max_tokens=64, messages=HELLO, system="be brief")
    assert message.type == "message" and message.role == "assistant"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Echo: hello big world"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3 + 2, 4)


def test_stream_events_are_assembled_by_the_sdk(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="mock-model", max_tokens=64, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds and "message_delta" in kinds
    assert final.content[0].text == "Echo: hello big world"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 4


def test_streamed_tool_use_input_arrives_as_json_fragments(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="tool-model", max_tokens=64, messages=HELLO, tools=[WEATHER]) as stream:
        fragments = [e for e in stream if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
        final = stream.get_final_message()
    assert len(fragments) > 1
    (block,) = final.content
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "test"}
    assert final.stop_reason == "tool_use"


def test_adaptive_thinking_on_a_current_model(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-opus-4-7-mock-model", max_tokens=64, messages=HELLO, thinking={"type": "adaptive"},
        output_config={"effort": "high"},
    )  # fmt: skip
    assert [block.type for block in message.content] == ["thinking", "text"]


def test_thinking_comes_first_with_a_signature(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="mock-model", max_tokens=2048, messages=HELLO, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.signature and thinking.thinking == "Thinking about: hello big world"
    assert text.type == "text"


def test_cache_control_writes_then_reads(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "a shared preamble of six words", "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model="mock-model", max_tokens=64, messages=HELLO, system=system)  # type: ignore[arg-type]
    second = client.messages.create(model="mock-model", max_tokens=64, messages=HELLO, system=system)  # type: ignore[arg-type]
    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (6, 0)
    assert (second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (0, 6)
    assert second.usage.input_tokens == 3


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("error-400", anthropic.BadRequestError, 400),
        ("error-401", anthropic.AuthenticationError, 401),
        ("error-429", anthropic.RateLimitError, 429),
        ("error-500", anthropic.InternalServerError, 500),
        ("error-529", anthropic.APIStatusError, 529),
        ("no-such-model", anthropic.NotFoundError, 404),
    ],
)
def test_error_scenarios_use_anthropic_error_bodies(client: anthropic.Anthropic, model: str, error, status) -> None:
    with pytest.raises(error) as caught:
        client.messages.create(model=model, max_tokens=64, messages=HELLO)
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "greater than `thinking.budget_tokens`"),
        ({"extra_body": {"temperature": 1.5}}, "temperature"),
        ({"model": "claude-opus-4-7-mock-model", "extra_body": {"temperature": 0.5}}, "deprecated for this model"),
        ({"model": "claude-opus-4-7-mock-model", "thinking": {"type": "enabled", "budget_tokens": 1024}}, "adaptive"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": " "}]}]}, "non-whitespace"),
        ({"messages": [*HELLO, {"role": "assistant", "content": "Sure "}]}, "trailing whitespace"),
        (
            {"messages": [*HELLO, {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]}, *HELLO]},
            "without tool_result",
        ),
    ],
)  # fmt: skip
def test_requests_the_api_refuses_are_refused(client: anthropic.Anthropic, kwargs, needle) -> None:
    body = {"model": "mock-model", "max_tokens": 2048, "messages": HELLO, **kwargs}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**body)
    assert needle in caught.value.message


def test_wrong_key_is_refused(fake: FakeAnthropicUpstream) -> None:
    sdk = anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-wrong", max_retries=0)
    with sdk, pytest.raises(anthropic.AuthenticationError):
        sdk.messages.create(model="mock-model", max_tokens=64, messages=HELLO)


def test_error_event_mid_stream_reaches_the_sdk(client: anthropic.Anthropic) -> None:
    stream = client.messages.stream(model="overloaded-after-2", max_tokens=64, messages=HELLO)
    with pytest.raises(anthropic.APIStatusError) as caught, stream as events:
        for _event in events:
            pass
    assert "overloaded" in str(caught.value).lower()


def test_cut_stream_fails_in_the_sdk(client: anthropic.Anthropic) -> None:
    stream = client.messages.stream(model="cut-after-2", max_tokens=64, messages=HELLO)
    with pytest.raises(Exception), stream as events:  # noqa: B017 (a broken body: an httpx2 or API error)
        events.get_final_message()
