"""The Bedrock adapter's pure parts: Converse encoding, decoding, stream events, frames and SigV4."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from tests.fakes.bedrock_upstream import event, exception_frame

from polyroute.catalog.types import EndpointSpec, Pricing
from polyroute.domain.chat import ChatRequest, Usage
from polyroute.domain.secret import Secret
from polyroute.providers.bedrock.decode import StreamTranslator, decode_converse, stream_exception
from polyroute.providers.bedrock.encode import encode_request
from polyroute.providers.bedrock.eventstream import frame_event
from polyroute.providers.bedrock.signing import credentials_from, sign


def encode(messages: list[dict[str, Any]] | None = None, model: str = "us.anthropic.claude-sonnet-4-20250514-v1:0",
           max_tokens: int | None = None, **params: Any) -> dict[str, Any]:  # fmt: skip
    request = ChatRequest("b/m", messages or [{"role": "user", "content": "hi"}], max_tokens=max_tokens, params=params)
    return encode_request(request, EndpointSpec("b/m", "amazon-bedrock", model, Pricing(1, 1), 200_000))


def test_cache_control_becomes_a_cache_point_after_its_block():
    system = [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]
    user = [{"type": "text", "text": "long doc", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "q"}]
    body = encode([{"role": "system", "content": system}, {"role": "user", "content": user}])
    assert body["system"] == [{"text": "rules"}, {"cachePoint": {"type": "default"}}]
    assert body["messages"][0]["content"] == [{"text": "long doc"}, {"cachePoint": {"type": "default"}}, {"text": "q"}]


def test_tools_choice_and_results():
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    history = [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "t1", "content": "done"}]  # fmt: skip
    body = encode(history, tools=[tool], tool_choice="required")
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "f", "description": "d", "inputSchema": {"json": {"type": "object"}}}}],
        "toolChoice": {"any": {}},
    }
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "done"}]}}]},
    ]


def test_tool_choice_none_drops_tools_unless_the_history_uses_them():
    tool = {"type": "function", "function": {"name": "f"}}
    assert "toolConfig" not in encode(tools=[tool], tool_choice="none")
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history = [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "t1", "content": "x"}]  # fmt: skip
    config = encode(history, tools=[tool], tool_choice="none")["toolConfig"]
    assert "toolChoice" not in config and config["tools"][0]["toolSpec"]["name"] == "f"


def test_json_schema_goes_to_output_config_as_a_string():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = encode(response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}})
    definition = body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert body["outputConfig"]["textFormat"]["type"] == "json_schema"
    assert json.loads(definition["schema"]) == schema and definition["name"] == "thing"


def test_reasoning_per_model_family():
    older = encode(max_tokens=4000, reasoning={"effort": "medium"}, temperature=0.5)
    assert older["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2000}}
    assert older["inferenceConfig"] == {"maxTokens": 4000}  # no temperature while thinking
    current = encode(model="global.anthropic.claude-opus-4-8-v1:0", reasoning={"effort": "high"}, temperature=0.5)
    assert current["additionalModelRequestFields"] == {"thinking": {"type": "adaptive"}}
    assert current["outputConfig"] == {"effort": "high"}
    nova = encode(model="amazon.nova-2-lite-v1:0", reasoning={"effort": "max"})
    assert nova["additionalModelRequestFields"] == {
        "reasoningConfig": {"type": "enabled", "maxReasoningEffort": "high"}
    }
    plain = encode(
        model="meta.llama4-maverick-17b-instruct-v1:0", reasoning={"effort": "high"}, temperature=0.5, top_k=3
    )
    assert "additionalModelRequestFields" not in plain and plain["inferenceConfig"] == {"temperature": 0.5}


def test_images_need_inline_bytes_in_a_known_format():
    content = [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]
    assert encode([{"role": "user", "content": content}])["messages"][0]["content"] == [
        {"image": {"format": "jpeg", "source": {"bytes": "/9j/"}}}
    ]


def test_decoded_converse_response():
    body = {
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "think", "signature": "s"}}},
            {"text": "Hi"},
            {"toolUse": {"toolUseId": "t", "name": "f", "input": {}}},
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 3, "outputTokens": 9, "totalTokens": 20, "cacheReadInputTokens": 5,
                  "cacheWriteInputTokens": 3},
    }  # fmt: skip
    completion = decode_converse(body)
    choice = completion.choices[0]
    assert (choice["finish_reason"], choice["native_finish_reason"]) == ("tool_calls", "tool_use")
    assert choice["message"]["reasoning_details"] == [
        {"type": "reasoning.text", "text": "think", "signature": "s", "format": "anthropic-claude-v1", "index": 0}
    ]
    assert completion.usage == Usage(prompt_tokens=11, completion_tokens=9, cached_tokens=5, cache_write_tokens=3)


@pytest.mark.parametrize(
    ("native", "finish"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("guardrail_intervened",
     "content_filter"), ("content_filtered", "content_filter"), ("malformed_tool_use", "error")],
)  # fmt: skip
def test_stop_reasons(native, finish):
    body = {"output": {"message": {"content": []}}, "stopReason": native, "usage": {}}
    assert decode_converse(body).choices[0]["finish_reason"] == finish


def test_stream_events_become_chunks_with_tool_indexes():
    translator = StreamTranslator()
    events = [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "a", "name": "f"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"x":1}'}}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        ("contentBlockStart", {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "b", "name": "g"}}}),
        ("contentBlockStop", {"contentBlockIndex": 2}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 2, "outputTokens": 3}, "metrics": {}}),
    ]
    chunks = [chunk for kind, payload in events for chunk in translator.feed(kind, payload)]
    calls = [c for ch in chunks for choice in ch.choices for c in choice["delta"].get("tool_calls") or []]
    assert [(c["index"], c.get("id"), c["function"].get("arguments")) for c in calls] == [
        (0, "a", ""), (0, None, '{"x":1}'), (1, "b", ""), (1, None, "{}")
    ]  # fmt: skip
    assert translator.finished and chunks[-1].usage == Usage(prompt_tokens=2, completion_tokens=3)


def test_exception_frames_carry_their_status():
    assert stream_exception("throttlingException", {"message": "slow"}).status == 429
    assert stream_exception("modelStreamErrorException", {"message": "x"}).status == 424
    buffer = EventStreamBuffer()
    buffer.add_data(exception_frame("validationException", "bad") + event("messageStart", {"role": "assistant"}))
    first, second = list(buffer)
    assert frame_event(first) == ("exception", "validationException", {"message": "bad"})
    kind, name, payload = frame_event(second)
    assert (kind, name, payload["role"]) == ("event", "messageStart", "assistant")


def test_a_corrupt_frame_fails_botocores_crc_check():
    good = event("messageStart", {"role": "assistant"})
    bad = good[:-4] + struct.pack(">I", (zlib.crc32(good[:-4]) + 1) & 0xFFFFFFFF)
    buffer = EventStreamBuffer()
    buffer.add_data(bad)
    with pytest.raises(Exception, match=r"[Cc]hecksum"):
        list(buffer)


def test_signing_covers_the_encoded_path_and_the_exact_body():
    credentials = credentials_from(Secret("AKIDEXAMPLE:secret:token"))
    assert (credentials.access_key, credentials.secret_key, credentials.token) == ("AKIDEXAMPLE", "secret", "token")
    url = "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-v2%3A1/converse"
    headers = sign(url, b'{"messages":[]}', {"Content-Type": "application/json"}, credentials, "us-west-2")
    assert headers["X-Amz-Security-Token"] == "token"
    assert "/us-west-2/bedrock/aws4_request" in headers["Authorization"]
    # Recompute as a server would: same path bytes and body give the same signature; another body does not.
    for body, same in ((b'{"messages":[]}', True), (b'{"messages":[1]}', False)):
        request = AWSRequest(method="POST", url=url, data=body, headers={k: v for k, v in headers.items()
                                                                         if k != "Authorization"})  # fmt: skip
        request.context["timestamp"] = headers["X-Amz-Date"]
        signer = SigV4Auth(Credentials("AKIDEXAMPLE", "secret", "token"), "bedrock", "us-west-2")
        signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        assert (signature in headers["Authorization"]) == same


def test_top_level_cache_control_puts_a_cache_point_after_the_prompt():
    body = encode([{"role": "user", "content": "long question"}], cache_control={"type": "ephemeral"})
    assert body["messages"][-1]["content"] == [{"text": "long question"}, {"cachePoint": {"type": "default"}}]
