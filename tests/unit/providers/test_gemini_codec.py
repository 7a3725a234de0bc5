"""The Gemini adapter's pure parts: schema conversion, request encoding, response and stream decoding."""

from __future__ import annotations

from typing import Any

import pytest

from polyroute.catalog.types import EndpointSpec, Pricing, ProviderSpec
from polyroute.domain.chat import ChatRequest, Usage
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.gemini.decode import decode_response, finish_reason
from polyroute.providers.gemini.encode import encode_request
from polyroute.providers.gemini.provider import model_url_prefix
from polyroute.providers.gemini.schema import gemini_schema
from polyroute.providers.gemini.stream import StreamTranslator


def encode(messages: list[dict[str, Any]] | None = None, model: str = "gemini-2.5-flash",
           max_tokens: int | None = None, **params: Any) -> dict[str, Any]:  # fmt: skip
    request = ChatRequest("g/m", messages or [{"role": "user", "content": "hi"}], max_tokens=max_tokens, params=params)
    return encode_request(request, EndpointSpec("g/m", "google-ai-studio", model, Pricing(1, 1), 1_000_000))


def test_json_schema_becomes_geminis_openapi_subset():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": ["string", "null"], "description": "who"},
            "kind": {"const": "person"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
            "either": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["name"],
        "$defs": {
            "Tag": {"type": "object", "properties": {"label": {"type": "string"}}, "additionalProperties": False}
        },
    }
    assert gemini_schema(schema) == {
        "type": "OBJECT",
        "required": ["name"],
        "properties": {
            "name": {"nullable": True, "type": "STRING", "description": "who"},
            "kind": {"enum": ["person"], "type": "STRING"},
            "tags": {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {"label": {"type": "STRING"}}}},
            "either": {"nullable": True, "type": "INTEGER"},
        },
    }


def test_recursive_refs_stop_at_a_plain_object():
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
    }
    depth, node = 0, gemini_schema(schema)
    while "properties" in node:
        node, depth = node["properties"]["next"], depth + 1
    assert node == {"type": "OBJECT"} and depth == 8


def test_turns_roles_system_instruction_and_function_responses_by_name():
    call = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    body = encode([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_9", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_9", "content": "plain text"},
        {"role": "user", "content": "thanks"},
    ])  # fmt: skip
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_weather", "response": {"content": "plain text"}}},
            {"text": "thanks"},
        ]},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ],
)
def test_tool_choice_becomes_function_calling_config(choice, config):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {}}}}}
    body = encode(tools=[tool], tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": config}
    assert body["tools"][0]["functionDeclarations"][0]["parameters"] == {"type": "OBJECT", "properties": {"a": {}}}


def test_generation_config_sampling_stop_json_and_thinking():
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {}}}}
    body = encode(max_tokens=1000, temperature=0.3, top_p=0.9, top_k=20, seed=7, stop="END", response_format=fmt,
                  reasoning={"effort": "low"})  # fmt: skip
    assert body["generationConfig"] == {
        "temperature": 0.3, "topP": 0.9, "topK": 20, "seed": 7, "maxOutputTokens": 1000, "stopSequences": ["END"],
        "responseMimeType": "application/json", "responseSchema": {"type": "OBJECT"},
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 200},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("model", "reasoning", "max_tokens", "expected"),
    [
        ("gemini-2.5-pro", {"effort": "high"}, None, {"includeThoughts": True, "thinkingBudget": -1}),
        (
            "gemini-2.5-pro",
            {"max_tokens": 50, "exclude": True},
            None,
            {"includeThoughts": False, "thinkingBudget": 128},
        ),
        ("gemini-3-pro-preview", {"effort": "xhigh"}, 100, {"includeThoughts": True, "thinkingLevel": "high"}),
        ("gemini-3-flash", {"effort": "minimal"}, None, {"includeThoughts": True, "thinkingLevel": "low"}),
    ],
)
def test_thinking_config_by_model_generation(model, reasoning, max_tokens, expected):
    assert (
        encode(model=model, max_tokens=max_tokens, reasoning=reasoning)["generationConfig"]["thinkingConfig"]
        == expected
    )


def test_echoed_thought_signatures_go_back_on_their_parts():
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in (1, 2)]
    details = [
        {"type": "reasoning.text", "text": "hmm", "format": "google-gemini-v1", "index": 0},
        {"type": "reasoning.encrypted", "data": "SIG2", "id": "c2", "format": "google-gemini-v1", "index": 1},
        {"type": "reasoning.encrypted", "data": "SIG0", "format": "google-gemini-v1", "index": 2},
    ]
    assistant = {"role": "assistant", "content": "ok", "tool_calls": calls, "reasoning_details": details}
    body = encode([{"role": "user", "content": "go"}, assistant])
    assert body["contents"][1]["parts"] == [
        {"text": "ok", "thoughtSignature": "SIG0"},
        {"functionCall": {"name": "f", "args": {}}},
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "SIG2"},
    ]


def test_data_url_images_are_inline_data():
    content = [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG"}},
    ]
    assert encode([{"role": "user", "content": content}])["contents"][0]["parts"] == [
        {"text": "see"},
        {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
    ]


@pytest.mark.parametrize(
    ("native", "called", "finish"),
    [("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"), ("SAFETY", False,
     "content_filter"), ("RECITATION", False, "content_filter"), ("MALFORMED_FUNCTION_CALL", False, "error"),
     ("OTHER", False, "stop")],
)  # fmt: skip
def test_finish_reasons(native, called, finish):
    assert finish_reason(native, called_tools=called) == finish


def test_decoded_response_with_thoughts_calls_signature_and_usage():
    body = {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "plan", "thought": True},
            {"text": "Sure"},
            {"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": "SIG"},
        ]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
                          "cachedContentTokenCount": 4},
        "responseId": "r1",
    }  # fmt: skip
    completion = decode_response(body)
    message = completion.choices[0]["message"]
    assert message["content"] == "Sure" and message["reasoning"] == "plan"
    assert message["tool_calls"] == [
        {"id": "call_r1_0", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
    ]
    assert message["reasoning_details"][1] == {"type": "reasoning.encrypted", "data": "SIG", "id": "call_r1_0",
                                               "format": "google-gemini-v1", "index": 1}  # fmt: skip
    assert completion.choices[0]["finish_reason"] == "tool_calls"
    assert completion.usage == Usage(prompt_tokens=10, completion_tokens=12, cached_tokens=4, reasoning_tokens=7)


def test_a_blocked_prompt_finishes_with_content_filter():
    body = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 3}}
    choice = decode_response(body).choices[0]
    assert (choice["finish_reason"], choice["native_finish_reason"]) == ("content_filter", "PROHIBITED_CONTENT")
    translator = StreamTranslator()
    chunks = translator.feed(body)
    assert translator.finished and chunks[-2].choices[0]["finish_reason"] == "content_filter"


def test_an_error_object_is_an_upstream_error():
    with pytest.raises(UpstreamError) as caught:
        StreamTranslator().feed({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    assert (caught.value.kind, caught.value.status) == (FailureKind.HTTP, 503)


def test_stream_thought_pieces_share_one_reasoning_detail():
    translator = StreamTranslator()
    chunks = []
    for piece in ("a", "b"):
        chunks += translator.feed({"candidates": [{"content": {"parts": [{"text": piece, "thought": True}]}}]})
    chunks += translator.feed({"candidates": [{"content": {"parts": [{"text": "done"}]}, "finishReason": "STOP"}],
                               "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}})  # fmt: skip
    indexes = [d["index"] for c in chunks for ch in c.choices for d in ch["delta"].get("reasoning_details") or []]
    assert indexes == [0, 0]
    assert chunks[-1].usage == Usage(prompt_tokens=1, completion_tokens=1)


@pytest.mark.parametrize(
    ("base", "options", "prefix"),
    [
        ("https://generativelanguage.googleapis.com", {}, "https://generativelanguage.googleapis.com/v1beta/models/"),
        ("https://proxy/v1", {}, "https://proxy/v1/models/"),
        ("https://aiplatform.googleapis.com", {"api": "vertex"},
         "https://aiplatform.googleapis.com/v1/publishers/google/models/"),
        ("https://eu-aiplatform.googleapis.com", {"api": "vertex", "project": "p", "location": "eu"},
         "https://eu-aiplatform.googleapis.com/v1/projects/p/locations/eu/publishers/google/models/"),
    ],
)  # fmt: skip
def test_urls_for_ai_studio_and_vertex(base, options, prefix):
    spec = ProviderSpec("g", "G", "gemini", base, options=options)
    assert model_url_prefix(spec) == prefix
