"""The fake upstream speaks OpenAI's wire protocol: the official SDK parses everything it sends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx2
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAIUpstream

HELLO = [{"role": "user", "content": "hello big world"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(stall_s=30) as upstream:
        yield upstream


@pytest.fixture
def client(fake: FakeOpenAIUpstream) -> Iterator[openai.OpenAI]:
    fake.clear()
    fake.delay_s = 0
    with openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=10) as sdk:
        yield sdk


def test_completion_echoes_the_last_user_message_with_word_count_usage(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model="mock-model", messages=HELLO)

    assert result.object == "chat.completion"
    assert result.model == "mock-model"
    assert result.system_fingerprint
    assert result.choices[0].message.content == "Echo: hello big world"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (3, 4, 7)


def test_stream_sends_role_then_content_then_finish_then_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="mock-model", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello big world"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="mock-model", messages=HELLO, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_tool_model_calls_the_first_tool_with_schema_shaped_arguments(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model="tool-model", messages=HELLO, tools=[WEATHER_TOOL])

    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "test", "unit": "c"}


def test_streamed_tool_call_is_reassembled_by_the_sdk(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="tool-model", messages=HELLO, tools=[WEATHER_TOOL]) as stream:
        fragments = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()

    assert len(fragments) > 1  # arguments really arrive in pieces
    call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "test", "unit": "c"}


def test_tool_choice_selects_the_named_tool(client: openai.OpenAI) -> None:
    other = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}
    result = client.chat.completions.create(
        model="tool-model",
        messages=HELLO,
        tools=[other, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert result.choices[0].message.tool_calls[0].function.name == "get_weather"


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("error-400", openai.BadRequestError, 400),
        ("error-401", openai.AuthenticationError, 401),
        ("error-429", openai.RateLimitError, 429),
        ("error-500", openai.InternalServerError, 500),
        ("error-503", openai.InternalServerError, 503),
        ("no-such-model", openai.NotFoundError, 404),
    ],
)
def test_error_scenarios_use_openai_error_bodies(
    client: openai.OpenAI, model: str, error: type[openai.APIStatusError], status: int
) -> None:
    with pytest.raises(error) as caught:
        client.chat.completions.create(model=model, messages=HELLO, stream=True)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and caught.value.body["message"]
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "1"


def test_wrong_key_is_rejected_and_the_request_is_still_recorded(fake: FakeOpenAIUpstream) -> None:
    fake.clear()
    sdk = openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong-key-1234", max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as caught:
        sdk.chat.completions.create(model="mock-model", messages=HELLO, extra_headers={"X-Title": "t"})

    assert "sk-wrong-key" not in str(caught.value)  # the key is masked, as OpenAI does
    [recorded] = fake.requests
    assert recorded.headers["authorization"] == "Bearer sk-wrong-key-1234"
    assert recorded.headers["x-title"] == "t"
    assert recorded.body["messages"] == HELLO


def test_cut_stream_delivers_n_chunks_then_breaks_the_connection(client: openai.OpenAI) -> None:
    contents = []
    with pytest.raises(openai.APIConnectionError) as caught:
        for chunk in client.chat.completions.create(model="cut-after-2", messages=HELLO, stream=True):
            contents.extend(c.delta.content for c in chunk.choices if c.delta.content)
    assert contents == ["w0", " w1"]
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)  # no [DONE], body cut short


def test_cut_non_stream_body_is_truncated(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="cut-after-2", messages=HELLO)


def test_stalled_stream_goes_silent_without_closing(fake: FakeOpenAIUpstream) -> None:
    contents = []
    sdk = openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=0.5)
    with sdk, pytest.raises(openai.APITimeoutError):
        for chunk in sdk.chat.completions.create(model="stall-after-1", messages=HELLO, stream=True):
            contents.extend(c.delta.content for c in chunk.choices if c.delta.content)
    assert contents == ["w0"]


def test_garbage_is_not_json(client: openai.OpenAI) -> None:
    with pytest.raises((openai.APIResponseValidationError, json.JSONDecodeError, ValueError)):
        client.chat.completions.create(model="garbage", messages=HELLO)
    with pytest.raises(ValueError):
        list(client.chat.completions.create(model="garbage", messages=HELLO, stream=True))


def test_empty_reply_has_empty_content_and_no_completion_tokens(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model="empty", messages=HELLO)
    assert result.choices[0].message.content == ""
    assert result.usage is not None and result.usage.completion_tokens == 0


def test_long_streams_n_tokens_and_max_tokens_truncates(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="long-50", messages=HELLO, stream=True))
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 50

    short = client.chat.completions.create(model="long-50", messages=HELLO, max_tokens=5)
    assert short.choices[0].finish_reason == "length"
    assert short.choices[0].message.content == "w0 w1 w2 w3 w4"


def test_slow_scenario_and_delay_hold_back_the_first_byte(fake: FakeOpenAIUpstream, client: openai.OpenAI) -> None:
    started = time.monotonic()
    client.chat.completions.create(model="slow-300", messages=HELLO)
    assert time.monotonic() - started >= 0.3

    fake.delay_s = 0.2
    started = time.monotonic()
    client.chat.completions.create(model="mock-model", messages=HELLO)
    assert time.monotonic() - started >= 0.2


def test_models_lists_the_scenarios(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"mock-model", "tool-model", "error-503"} <= ids


async def test_async_client_streams_while_the_fake_runs_in_its_own_thread(fake: FakeOpenAIUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(model="slow-100", messages=HELLO, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: hello big world"
