"""The Anthropic adapter's pure parts: request encoding, response decoding, stream translation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyroute.catalog.types import EndpointSpec, Pricing
from polyroute.domain.chat import ChatRequest, Usage
from polyroute.domain.errors import BadRequest
from polyroute.providers.anthropic.decode import decode_message, finish_reason
from polyroute.providers.anthropic.encode import encode_request
from polyroute.providers.anthropic.models import claude_traits, effort_of
from polyroute.providers.anthropic.stream import StreamTranslator
from polyroute.providers.chat_input import ReasoningAsk
from polyroute.providers.errors import FailureKind, UpstreamError

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def endpoint(model: str = "claude-haiku-4-5", max_completion: int | None = None, params: tuple[str, ...] = ()) -> Any:
    return EndpointSpec("a/m", "anthropic", model, Pricing(1, 1), 200_000, max_completion, supported_parameters=params)


def encode(messages: list[dict[str, Any]] | None = None, model: str = "claude-haiku-4-5", max_tokens: int | None = None,
           max_completion: int | None = None, **params: Any) -> dict[str, Any]:  # fmt: skip
    request = ChatRequest("a/m", messages or [{"role": "user", "content": "hi"}], max_tokens=max_tokens, params=params)
    return encode_request(request, endpoint(model, max_completion), stream=False)


def test_system_and_developer_messages_become_system_blocks_keeping_cache_control():
    system = [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    body = encode([{"role": "system", "content": system}, {"role": "developer", "content": "more"},
                   {"role": "user", "content": "hi"}])  # fmt: skip
    assert body["system"] == [
        {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "more"},
    ]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


@pytest.mark.parametrize(
    ("requested", "endpoint_max", "expected"), [(None, None, 4096), (None, 64000, 64000), (300, 64000, 300)]
)
def test_max_tokens_defaults_to_the_endpoint_limit_then_4096(requested, endpoint_max, expected):
    assert encode(max_tokens=requested, max_completion=endpoint_max)["max_tokens"] == expected


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice_mapping(choice, parallel, expected):
    params: dict[str, Any] = {"tools": [TOOL]}
    if choice is not None:
        params["tool_choice"] = choice
    if parallel is not None:
        params["parallel_tool_calls"] = parallel
    body = encode(**params)
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert body.get("tool_choice") == expected


def test_tool_calls_and_results_pair_up_and_results_share_one_user_turn():
    calls = [{"id": f"t{i}", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}} for i in (1, 2)]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "calling", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "t1", "content": "one"},
        {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": "and?"},
    ]
    turns = encode(messages)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][1:] == [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
        {"type": "tool_use", "id": "t2", "name": "f", "input": {"x": 1}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "two"}]},
        {"type": "text", "text": "and?"},
    ]


def test_bad_tool_arguments_are_a_bad_request():
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}
    with pytest.raises(BadRequest, match="not a JSON object"):
        encode([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}])


def test_images_inline_and_by_url():
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
               {"type": "image_url", "image_url": "https://example.com/cat.jpg"}]  # fmt: skip
    blocks = encode([{"role": "user", "content": content}])["messages"][0]["content"]
    assert blocks == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_prefill_loses_trailing_whitespace():
    turns = encode([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, "}])["messages"]
    assert turns[-1] == {"role": "assistant", "content": [{"type": "text", "text": "Sure,"}]}


def test_budget_thinking_follows_openrouters_rule_and_drops_sampling():
    body = encode(max_tokens=10_000, reasoning={"effort": "high"}, temperature=0.2, top_k=5)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8000} and body["max_tokens"] == 10_000
    assert "temperature" not in body and "top_k" not in body
    small = encode(max_tokens=1000, reasoning={"max_tokens": 2000})
    assert small["thinking"]["budget_tokens"] == 2000 and small["max_tokens"] == 3000  # answer room on top
    assert encode(max_tokens=5000, reasoning={"effort": "minimal"})["thinking"]["budget_tokens"] == 1024


def test_current_claude_models_get_adaptive_thinking_and_no_sampling_knobs():
    body = encode(model="claude-opus-4-7", reasoning={"effort": "xhigh"}, temperature=0.2, top_p=0.5)
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "xhigh"}
    plain = encode(model="claude-fable-5", temperature=0.2, top_p=0.5)
    assert "temperature" not in plain and "top_p" not in plain


def test_temperature_is_clamped_to_anthropics_range():
    assert encode(temperature=1.7)["temperature"] == 1.0


def test_json_schema_becomes_a_strict_output_format():
    schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    out = encode(response_format=fmt)["output_config"]["format"]
    assert out["type"] == "json_schema"
    assert out["schema"]["additionalProperties"] is False
    assert out["schema"]["properties"]["a"]["additionalProperties"] is False


def test_parameters_the_endpoint_does_not_list_are_dropped():
    request = ChatRequest("a/m", [{"role": "user", "content": "hi"}], params={"temperature": 0.5, "stop": "x"})
    body = encode_request(request, endpoint(params=("max_tokens",)), stream=True)
    assert "temperature" not in body and body["stop_sequences"] == ["x"] and body["stream"] is True


def test_echoed_reasoning_details_become_thinking_blocks_first():
    details = [
        {"type": "reasoning.text", "text": "hmm", "signature": "sig1", "format": "anthropic-claude-v1", "index": 0},
        {"type": "reasoning.encrypted", "data": "xyz", "format": "anthropic-claude-v1", "index": 1},
        {"type": "reasoning.encrypted", "data": "other", "format": "google-gemini-v1", "index": 2},
    ]
    assistant = {"role": "assistant", "content": "b", "reasoning_details": details}
    turn = encode([{"role": "user", "content": "a"}, assistant, {"role": "user", "content": "c"}])["messages"][1]
    assert turn["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "xyz"},
        {"type": "text", "text": "b"},
    ]


@pytest.mark.parametrize(
    ("native", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
     ("refusal", "content_filter"), ("model_context_window_exceeded", "length"), ("pause_turn", "stop"),
     ("something_new", "stop")],
)  # fmt: skip
def test_stop_reasons_map_to_openai_finish_reasons(native, finish):
    assert finish_reason(native) == finish


def test_decoded_message_keeps_native_reason_usage_and_reasoning():
    body = {
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "ponder", "signature": "s"},
            {"type": "redacted_thinking", "data": "r"},
            {"type": "text", "text": "Hi"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"a": [1]}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "cache_creation_input_tokens": 7, "cache_read_input_tokens": 11,
                  "output_tokens": 20, "output_tokens_details": {"thinking_tokens": 12}},
    }  # fmt: skip
    completion = decode_message(body)
    choice = completion.choices[0]
    assert (choice["finish_reason"], choice["native_finish_reason"]) == ("tool_calls", "tool_use")
    message = choice["message"]
    assert message["content"] == "Hi" and message["reasoning"] == "ponder"
    assert [d["type"] for d in message["reasoning_details"]] == ["reasoning.text", "reasoning.encrypted"]
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":[1]}'}
    assert completion.usage == Usage(prompt_tokens=23, completion_tokens=20, cached_tokens=11, cache_write_tokens=7,
                                     reasoning_tokens=12)  # fmt: skip
    assert "reasoning" not in decode_message(body, exclude_reasoning=True).choices[0]["message"]


def test_an_error_body_is_an_upstream_error_with_its_status():
    with pytest.raises(UpstreamError) as caught:
        decode_message({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert (caught.value.kind, caught.value.status) == (FailureKind.HTTP, 529) and caught.value.retryable


def feed(events: list[dict[str, Any]], **kwargs: Any) -> list[Any]:
    translator = StreamTranslator(**kwargs)
    return [chunk for event in events for chunk in translator.feed(event)]


def start(usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {"type": "message_start", "message": {"usage": usage or {"input_tokens": 3, "output_tokens": 1}}}


def tool_block(call_id: str, name: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {}}


def test_tool_call_indexes_count_tool_calls_not_content_blocks():
    chunks = feed([
        start(),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": tool_block("a", "f")},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"x":'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": tool_block("b", "g")},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ])  # fmt: skip
    calls = [c for chunk in chunks for choice in chunk.choices for c in choice["delta"].get("tool_calls") or []]
    assert [(c["index"], c.get("id")) for c in calls] == [(0, "a"), (0, None), (0, None), (1, "b"), (1, None)]
    assert calls[-1]["function"]["arguments"] == "{}"  # a tool without input still gets valid JSON arguments
    assert chunks[-2].choices[0]["finish_reason"] == "tool_calls"
    assert chunks[-1].usage == Usage(prompt_tokens=3, completion_tokens=9)


def test_tool_input_given_whole_in_content_block_start_is_not_lost():
    chunks = feed([
        start(),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "a", "name": "f",
                                                                       "input": {"city": "Paris"}}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ])  # fmt: skip
    arguments = "".join(c["function"].get("arguments") or "" for ch in chunks for choice in ch.choices
                        for c in choice["delta"].get("tool_calls") or [])  # fmt: skip
    assert json.loads(arguments) == {"city": "Paris"}


def test_thinking_and_signature_deltas_become_reasoning_details_and_pings_are_ignored():
    chunks = feed([
        start(),
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
        {"type": "content_block_stop", "index": 0},
    ])  # fmt: skip
    details = [d for ch in chunks[1:] for d in ch.choices[0]["delta"]["reasoning_details"]]
    assert details == [
        {"type": "reasoning.text", "text": "hmm", "format": "anthropic-claude-v1", "index": 0},
        {"type": "reasoning.text", "text": "", "signature": "sig", "format": "anthropic-claude-v1", "index": 0},
    ]
    assert all(chunk.has_content for chunk in chunks[1:])
    thought = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "x"}}
    assert len(feed([start(), thought], exclude_reasoning=True)) == 1  # the role chunk only


def test_usage_combines_message_start_and_message_delta():
    translator = StreamTranslator()
    translator.feed(start({"input_tokens": 4, "cache_read_input_tokens": 6, "output_tokens": 1}))
    translator.feed({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 12}})
    *_, usage_chunk = translator.feed({"type": "message_stop"})
    assert usage_chunk.usage == Usage(prompt_tokens=10, completion_tokens=12, cached_tokens=6)
    assert translator.finished


def test_an_error_event_mid_stream_raises_with_its_status():
    with pytest.raises(UpstreamError) as caught:
        feed([start(), {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}])
    assert caught.value.status == 429


@pytest.mark.parametrize(
    ("model", "sampling", "adaptive"),
    [
        ("claude-haiku-4-5-20251001", True, False),
        ("claude-sonnet-4-20250514", True, False),
        ("claude-3-7-sonnet-20250219", True, False),
        ("claude-opus-4-6", True, True),
        ("claude-opus-4-7", False, True),
        ("anthropic.claude-opus-4-8-v1:0", False, True),
        ("claude-sonnet-5", False, True),
        ("claude-fable-5-1", False, True),
        ("some-compatible-model", True, False),
    ],
)
def test_claude_traits_by_model_id(model, sampling, adaptive):
    traits = claude_traits(model)
    assert (traits.sampling, traits.adaptive_thinking) == (sampling, adaptive)


def test_effort_from_an_explicit_budget_is_the_nearest_level():
    assert effort_of(ReasoningAsk(effort="minimal"), 1000) == "low"
    assert effort_of(ReasoningAsk(max_tokens=8000), 10_000) == "high"
    assert effort_of(ReasoningAsk(max_tokens=500), 10_000) == "low"


def test_top_level_cache_control_asks_for_automatic_caching():
    assert encode(cache_control={"type": "ephemeral"})["cache_control"] == {"type": "ephemeral"}
