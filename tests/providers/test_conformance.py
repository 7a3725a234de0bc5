"""One conformance suite for every adapter: the same canonical requests give the same OpenAI-shaped
results from every dialect, streamed and not, with identical usage.

Each test runs per dialect (openai, anthropic, gemini, bedrock) and per mode (complete, stream) through
the real provider classes against that dialect's wire-faithful fake (tests/fakes/). A scenario a fake
does not serve (the OpenAI fake has no reasoning, safety or parallel-tool scenarios) is left out of that
dialect's parametrization rather than skipped.
"""

from __future__ import annotations

import gc
import json
import sys
from typing import Any

import pytest
from tests.providers.harness import DIALECTS, Dialect, dialects_for, endpoint

from polyroute.billing.pricing import cost_of
from polyroute.catalog.types import Pricing
from polyroute.domain.chat import ChatRequest, Usage

HELLO = [{"role": "user", "content": "hello big world"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {
    "zone": {"type": "string"}}}}}  # fmt: skip
MODES = pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])


def every(scenario: str = "mock-model") -> Any:
    return pytest.mark.parametrize("dialect", dialects_for(scenario), ids=lambda d: d.id)


def chat(messages: list[dict[str, Any]] = HELLO, max_tokens: int | None = None, **params: Any) -> ChatRequest:
    return ChatRequest(model="conf/model", messages=messages, max_tokens=max_tokens, params=params)


async def both(run: Any, adapter: Any, request: ChatRequest, ep: Any) -> Any:
    """Run streamed and not; they must agree on everything comparable. Returns the non-streamed result."""
    whole = await run(adapter, request, ep, False)
    streamed = await run(adapter, request, ep, True)
    assert streamed.comparable() == whole.comparable()
    return whole


@every()
async def test_text_answer_and_usage_are_identical_streamed_and_not(dialect: Dialect, adapter_for, run):
    result = await both(run, adapter_for(dialect), chat(), endpoint(dialect, "mock-model"))
    assert result.message["content"] == "Echo: hello big world"
    assert (result.finish_reason, result.native_finish_reason) == ("stop", dialect.native_finish["stop"])
    assert result.usage == Usage(prompt_tokens=3, completion_tokens=4)


@every()
@MODES
async def test_system_prompt_reaches_the_model(dialect: Dialect, adapter_for, run, stream):
    messages = [{"role": "system", "content": "be terse please"}, {"role": "developer", "content": "no"}, *HELLO]
    result = await run(adapter_for(dialect), chat(messages), endpoint(dialect, "mock-model"), stream)
    assert result.message["content"] == "Echo: hello big world"
    assert result.usage.prompt_tokens == 3 + 3 + 1  # the fakes count every word the model reads


@every()
@MODES
async def test_max_tokens_truncates_with_finish_length(dialect: Dialect, adapter_for, run, stream):
    result = await run(adapter_for(dialect), chat(max_tokens=5), endpoint(dialect, "long-100"), stream)
    assert result.message["content"] == "w0 w1 w2 w3 w4"
    assert (result.finish_reason, result.native_finish_reason) == ("length", dialect.native_finish["length"])
    assert result.usage.completion_tokens == 5


@every()
@MODES
async def test_empty_answer(dialect: Dialect, adapter_for, run, stream):
    result = await run(adapter_for(dialect), chat(), endpoint(dialect, "empty"), stream)
    assert not result.message["content"] and result.finish_reason == "stop"


@every("tool-model")
async def test_tool_call_is_translated_with_arguments_streamed_and_not(dialect: Dialect, adapter_for, run):
    result = await both(run, adapter_for(dialect), chat(tools=[WEATHER]), endpoint(dialect, "tool-model"))
    (call,) = result.message["tool_calls"]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "test", "unit": "c"}
    assert result.message["content"] is None
    assert (result.finish_reason, result.native_finish_reason) == ("tool_calls", dialect.native_finish["tool_calls"])
    assert result.usage == Usage(prompt_tokens=3, completion_tokens=1)


@every("tool-model")
@MODES
async def test_named_tool_choice_picks_that_tool(dialect: Dialect, adapter_for, run, stream):
    choice = {"type": "function", "function": {"name": "get_time"}}
    request = chat(tools=[WEATHER, TIME], tool_choice=choice)
    result = await run(adapter_for(dialect), request, endpoint(dialect, "tool-model"), stream)
    assert [c["function"]["name"] for c in result.message["tool_calls"]] == ["get_time"]


@every("tool-model")
@MODES
async def test_tool_choice_none_answers_in_text(dialect: Dialect, adapter_for, run, stream):
    result = await run(adapter_for(dialect), chat(tools=[WEATHER], tool_choice="none"), endpoint(dialect, "tool-model"),
                       stream)  # fmt: skip
    assert result.message["content"] == "Echo: hello big world" and "tool_calls" not in result.message


@every("parallel-tool-model")
async def test_parallel_tool_calls_get_distinct_indexes_and_ids(dialect: Dialect, adapter_for, run):
    result = await both(
        run, adapter_for(dialect), chat(tools=[WEATHER, TIME]), endpoint(dialect, "parallel-tool-model")
    )
    calls = result.message["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert len({c["id"] for c in calls}) == 2
    assert json.loads(calls[1]["function"]["arguments"]) == {"zone": "test"}


def tool_history(
    call_ids: tuple[str, ...] = ("call_1",), names: tuple[str, ...] = ("get_weather",)
) -> list[dict[str, Any]]:
    calls = [{"id": i, "type": "function", "function": {"name": n, "arguments": '{"city": "Paris"}'}}
             for i, n in zip(call_ids, names, strict=True)]  # fmt: skip
    results = [
        {"role": "tool", "tool_call_id": i, "content": f"sunny in {n}"} for i, n in zip(call_ids, names, strict=True)
    ]
    return [
        {"role": "user", "content": "weather in paris"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *results,
        {"role": "user", "content": "thanks and now"},
    ]


@every("tool-model")
@MODES
async def test_tool_results_are_sent_back_paired_with_their_calls(dialect: Dialect, adapter_for, run, stream):
    request = chat(tool_history(), tools=[WEATHER])
    result = await run(adapter_for(dialect), request, endpoint(dialect, "mock-model"), stream)
    assert result.message["content"] == "Echo: thanks and now"
    assert result.usage.prompt_tokens == 3 + 3 + 3  # both user turns and the tool result


@every("parallel-tool-model")
@MODES
async def test_parallel_tool_results_share_one_turn(dialect: Dialect, adapter_for, run, stream):
    request = chat(tool_history(("call_1", "call_2"), ("get_weather", "get_time")), tools=[WEATHER, TIME])
    result = await run(adapter_for(dialect), request, endpoint(dialect, "mock-model"), stream)
    assert result.message["content"] == "Echo: thanks and now"


@every()
@MODES
@pytest.mark.parametrize("where", ["data", "remote"])
async def test_image_input(dialect: Dialect, adapter_for, run, stream, where, image_host):
    url = f"{image_host.root_url}/cat.png" if where == "remote" else "data:image/png;base64,iVBORw0KGgo="
    content = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": url}}]
    result = await run(adapter_for(dialect), chat([{"role": "user", "content": content}]),
                       endpoint(dialect, "mock-model"), stream)  # fmt: skip
    assert result.message["content"] == "Echo: what is this"
    assert result.usage.prompt_tokens == 3


@every()
@MODES
async def test_json_schema_output(dialect: Dialect, adapter_for, run, stream):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
              "required": ["name", "age"], "additionalProperties": False}  # fmt: skip
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": schema}}
    result = await run(adapter_for(dialect), chat(response_format=fmt), endpoint(dialect, "mock-model"), stream)
    assert json.loads(result.message["content"]) == {"name": "test", "age": 1}


def reasoning_dialects() -> list[Dialect]:
    return [d for d in DIALECTS if d.supports("reasoning")]


@pytest.mark.parametrize("dialect", reasoning_dialects(), ids=lambda d: d.id)
async def test_reasoning_is_returned_and_counted_streamed_and_not(dialect: Dialect, adapter_for, run):
    request = chat(max_tokens=2000, reasoning={"effort": "high"})
    result = await both(run, adapter_for(dialect), request, endpoint(dialect, "mock-model"))
    assert result.message["content"] == "Echo: hello big world"
    assert result.message["reasoning"] == "Thinking about: hello big world"
    (detail,) = result.message["reasoning_details"]
    assert detail["type"] == "reasoning.text" and detail["format"] in ("anthropic-claude-v1", "google-gemini-v1")
    assert result.usage.completion_tokens == 4 + 5  # reasoning is output
    assert result.usage.reasoning_tokens == (5 if dialect.reports_reasoning_tokens else 0)


@pytest.mark.parametrize("dialect", reasoning_dialects(), ids=lambda d: d.id)
@MODES
async def test_reasoning_exclude_hides_the_text_but_counts_it(dialect: Dialect, adapter_for, run, stream):
    request = chat(reasoning={"effort": "low", "exclude": True})
    result = await run(adapter_for(dialect), request, endpoint(dialect, "mock-model"), stream)
    assert "reasoning" not in result.message
    assert result.usage.completion_tokens == 4 + 5


@pytest.mark.parametrize("dialect", reasoning_dialects(), ids=lambda d: d.id)
async def test_reasoning_and_signatures_round_trip_into_the_next_turn(dialect: Dialect, adapter_for, run, fake_of):
    adapter = adapter_for(dialect)
    model = "gemini-3-tool-model" if dialect.name == "gemini" else "tool-model"  # gemini-3 demands signatures back
    request = chat([{"role": "user", "content": "weather in paris"}], max_tokens=2000, reasoning={"effort": "low"},
                   tools=[WEATHER])  # fmt: skip
    first = await run(adapter, request, endpoint(dialect, model), True)
    call = first.message["tool_calls"][0]
    history = [*request.messages, {"role": "assistant", "content": None, **first.message},
               {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]  # fmt: skip
    second = await run(adapter, chat(history, max_tokens=2000, reasoning={"effort": "low"}, tools=[WEATHER]),
                       endpoint(dialect, model), False)  # fmt: skip
    assert second.finish_reason == "tool_calls"  # the fake accepted the echoed reasoning (it checks signatures)
    sent = json.dumps(fake_of(dialect).requests[-1].body)
    signature = next(d.get("signature") or d.get("data") for d in first.message["reasoning_details"]
                     if d.get("signature") or d.get("data"))  # fmt: skip
    assert signature in sent


@every("safety")
@MODES
async def test_content_filter_finish(dialect: Dialect, adapter_for, run, stream):
    result = await run(adapter_for(dialect), chat(), endpoint(dialect, "safety"), stream)
    assert result.finish_reason == "content_filter"
    assert result.native_finish_reason == dialect.native_finish["content_filter"]


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if d.name in ("anthropic", "bedrock")], ids=lambda d: d.id)
@MODES
async def test_cache_control_writes_then_reads_the_prompt_cache(dialect: Dialect, adapter_for, run, stream):
    system = [{"type": "text", "text": "a long shared preamble of seven words", "cache_control": {"type": "ephemeral"}}]
    request = chat([{"role": "system", "content": system}, *HELLO])
    adapter = adapter_for(dialect)
    first = await run(adapter, request, endpoint(dialect, "mock-model"), stream)
    second = await run(adapter, request, endpoint(dialect, "mock-model"), stream)
    assert (first.usage.cache_write_tokens, first.usage.cached_tokens) == (7, 0)
    assert (second.usage.cache_write_tokens, second.usage.cached_tokens) == (0, 7)
    assert first.usage.prompt_tokens == second.usage.prompt_tokens == 7 + 3
    # Priced at the endpoint's cache prices: writes dearer than fresh input, reads far cheaper.
    pricing = Pricing(prompt=10, completion=20, input_cache_read=1, input_cache_write=13)
    assert cost_of(first.usage, pricing).prompt_pusd == 3 * 10 + 7 * 13
    assert cost_of(second.usage, pricing).prompt_pusd == 3 * 10 + 7 * 1


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if d.name == "gemini"], ids=lambda d: d.id)
async def test_implicitly_cached_prefix_is_reported(dialect: Dialect, adapter_for, run):
    request = chat([{"role": "system", "content": "shared preamble words"}, *HELLO])
    adapter = adapter_for(dialect)
    await run(adapter, request, endpoint(dialect, "mock-model"), False)
    again = await run(adapter, request, endpoint(dialect, "mock-model"), True)
    assert again.usage.cached_tokens == 3 and again.usage.prompt_tokens == 6


@every()
@MODES
async def test_sampling_knobs_reach_models_that_take_them_only(dialect: Dialect, adapter_for, run, stream, fake_of):
    request = chat(temperature=0.3, top_p=0.9)
    result = await run(adapter_for(dialect), request, endpoint(dialect, "mock-model"), stream)
    assert result.message["content"] == "Echo: hello big world"  # Claude 4.7+ would refuse the knobs with a 400
    sent = json.dumps(fake_of(dialect).requests[-1].body)
    assert ("0.3" in sent) == (dialect.variant != "claude47")


@every()
async def test_a_finished_stream_leaves_no_generator_to_the_garbage_collector(dialect: Dialect, adapter_for, run):
    # An inner async generator abandoned mid-iteration (a `return` inside `async for`) is closed only
    # when the GC finalizes it: the loop then runs its aclose() as one more task per stream.
    hooks = sys.get_asyncgen_hooks()
    finalized: list[str] = []

    def finalizer(agen: Any) -> None:
        finalized.append(agen.__qualname__)
        hooks.finalizer(agen)

    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
    try:
        result = await run(adapter_for(dialect), chat(), endpoint(dialect, "mock-model"), True)
    finally:
        sys.set_asyncgen_hooks(*hooks)
    gc.collect()
    assert result.message["content"] == "Echo: hello big world"
    assert finalized == []
