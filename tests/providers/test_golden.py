"""Golden files for tricky payloads: what each encoder sends for a hard agent turn, and what each stream
translator makes of an interleaved native stream. A diff in tests/providers/golden/ is a wire change to
review; regenerate with `UPDATE_GOLDEN=1 pytest tests/providers/test_golden.py` after checking it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from polyroute.catalog.types import EndpointSpec, Pricing
from polyroute.domain.chat import ChatRequest
from polyroute.providers.anthropic.encode import encode_request as anthropic_encode
from polyroute.providers.anthropic.stream import StreamTranslator as AnthropicStream
from polyroute.providers.bedrock.decode import StreamTranslator as BedrockStream
from polyroute.providers.bedrock.encode import encode_request as bedrock_encode
from polyroute.providers.gemini.encode import encode_request as gemini_encode
from polyroute.providers.gemini.stream import StreamTranslator as GeminiStream

GOLDEN = Path(__file__).parent / "golden"
ALL = ("max_tokens", "temperature", "top_p", "stop", "tools", "tool_choice", "response_format", "reasoning")

# One hard agent turn: cached system prompt, image, parallel tool calls with echoed reasoning (one signature per
# dialect), two tool results (one JSON), a follow-up, a nested schema with $defs and nullable fields.
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "when": {"anyOf": [{"$ref": "#/$defs/Day"}, {"type": "null"}]},
        "units": {"type": "string", "enum": ["c", "f"]},
    },
    "required": ["city"],
    "additionalProperties": False,
    "$defs": {"Day": {"type": "object", "properties": {"date": {"type": "string", "format": "date"}}}},
}
REASONING = [
    {
        "type": "reasoning.text",
        "text": "Two lookups.",
        "signature": "ant-sig",
        "format": "anthropic-claude-v1",
        "index": 0,
    },
    {"type": "reasoning.encrypted", "data": "gem-sig", "id": "call_a", "format": "google-gemini-v1", "index": 1},
]
AGENT_TURN = ChatRequest(
    model="x/y",
    max_tokens=2048,
    messages=[
        {"role": "system", "content": [{"type": "text", "text": "You are a weather bot.",
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "Weather here and in Paris?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
        {"role": "assistant", "content": "Checking both.", "reasoning_details": REASONING, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": -3}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "Sunny, 21 C"},
        {"role": "user", "content": "Which is warmer?"},
    ],
    params={
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Current weather",
                                                    "parameters": SCHEMA}}],
        "tool_choice": "auto",
        "temperature": 0.4,
        "stop": ["END"],
        "reasoning": {"effort": "medium"},
    },
)  # fmt: skip

ENCODERS = {
    "anthropic": lambda ep: anthropic_encode(AGENT_TURN, ep, stream=True),
    "gemini": lambda ep: gemini_encode(AGENT_TURN, ep),
    "bedrock": lambda ep: bedrock_encode(AGENT_TURN, ep),
}
CASES = [
    ("anthropic", "claude-haiku-4-5-20251001"),
    ("anthropic", "claude-opus-4-7"),
    ("gemini", "gemini-2.5-flash"),
    ("gemini", "gemini-3-pro-preview"),
    ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ("bedrock", "amazon.nova-pro-v1:0"),
]


def check_golden(name: str, actual: Any) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(actual, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert json.loads(path.read_text()) == json.loads(text), f"{path.name} changed"


@pytest.mark.parametrize(("dialect", "model"), CASES, ids=[f"{d}-{m}" for d, m in CASES])
def test_agent_turn_request(dialect: str, model: str) -> None:
    endpoint = EndpointSpec("x/y", dialect, model, Pricing(1, 1), 200_000, 64_000, supported_parameters=ALL)
    check_golden(f"agent_turn.{dialect}.{model.replace(':', '_')}", ENCODERS[dialect](endpoint))


ANTHROPIC_EVENTS = [
    {"type": "message_start", "message": {"usage": {"input_tokens": 20, "cache_read_input_tokens": 5,
                                                     "output_tokens": 1}}},
    {"type": "ping"},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Two cities"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Checking."}},
    {"type": "content_block_stop", "index": 1},
    {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                   "name": "weather", "input": {}}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta",
                                                          "partial_json": "{\"city\": \"Os"}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "lo\"}"}},
    {"type": "content_block_stop", "index": 2},
    {"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_2",
                                                                   "name": "weather",
                                                                   "input": {"city": "Paris"}}},
    {"type": "content_block_stop", "index": 3},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 60}},
    {"type": "message_stop"},
]  # fmt: skip
GEMINI_EVENTS = [
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Two ", "thought": True}]}}]},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "cities", "thought": True}]}}]},
    {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}, "thoughtSignature": "CiQB"},
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
    ]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 25, "candidatesTokenCount": 12,
                                                    "thoughtsTokenCount": 30, "cachedContentTokenCount": 8},
     "responseId": "resp1"},
]  # fmt: skip
BEDROCK_EVENTS = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Two cities"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "EqQB"}}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Checking."}}),
    ("contentBlockStop", {"contentBlockIndex": 1}),
    ("contentBlockStart", {"contentBlockIndex": 2,
                           "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "weather"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"city\": \"Oslo\"}"}}}),
    ("contentBlockStop", {"contentBlockIndex": 2}),
    ("messageStop", {"stopReason": "tool_use"}),
    ("metadata", {"usage": {"inputTokens": 20, "outputTokens": 60, "totalTokens": 85, "cacheReadInputTokens": 5},
                  "metrics": {"latencyMs": 400}}),
]  # fmt: skip


def chunks_as_json(chunks: list[Any]) -> list[dict[str, Any]]:
    out = []
    for chunk in chunks:
        entry: dict[str, Any] = {"choices": chunk.choices, "has_content": chunk.has_content}
        if chunk.usage is not None:
            entry["usage"] = {k: getattr(chunk.usage, k) for k in chunk.usage.__slots__}
        out.append(entry)
    return out


def test_anthropic_interleaved_stream() -> None:
    translator = AnthropicStream()
    check_golden("stream.anthropic", chunks_as_json([c for e in ANTHROPIC_EVENTS for c in translator.feed(e)]))


def test_gemini_stream_with_parallel_calls_and_signature() -> None:
    translator = GeminiStream()
    check_golden("stream.gemini", chunks_as_json([c for e in GEMINI_EVENTS for c in translator.feed(e)]))


def test_bedrock_stream_with_reasoning_and_tool_use() -> None:
    translator = BedrockStream()
    check_golden("stream.bedrock", chunks_as_json([c for k, p in BEDROCK_EVENTS for c in translator.feed(k, p)]))
