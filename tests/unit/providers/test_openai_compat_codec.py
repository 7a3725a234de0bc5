"""The OpenAI-compatible adapter's pure encode/decode."""

import pytest

from polyroute.catalog.types import EndpointSpec, Pricing
from polyroute.domain.chat import ChatRequest
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.openai_compat.decode import decode_chunk, decode_completion
from polyroute.providers.openai_compat.encode import encode_request


def _endpoint(params=("temperature", "max_tokens", "tools")):
    return EndpointSpec("acme/m", "acme", "up-m", Pricing(1, 1), 8192, supported_parameters=params)


def test_encode_uses_upstream_id_and_drops_unsupported_parameters():
    request = ChatRequest(
        model="acme/m",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=7,
        params={"temperature": 0.2, "top_k": 5, "stop": ["x"]},
    )
    body = encode_request(request, _endpoint(), stream=True)
    assert body["model"] == "up-m"
    assert body["temperature"] == 0.2 and body["max_tokens"] == 7 and body["stop"] == ["x"]
    assert "top_k" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_completion_finish_reasons_are_normalised_and_native_kept():
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "eos"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 2}},
    }
    completion = decode_completion(body)
    choice = completion.choices[0]
    assert (choice["finish_reason"], choice["native_finish_reason"]) == ("stop", "eos")
    assert completion.usage is not None and completion.usage.cached_tokens == 2


def test_embedded_error_in_a_200_body_is_an_upstream_error():
    with pytest.raises(UpstreamError) as caught:
        decode_completion({"error": {"code": 429, "message": "slow down"}})
    assert caught.value.status == 429 and caught.value.kind is FailureKind.HTTP


@pytest.mark.parametrize("body", [[], {"choices": "x"}, {"choices": [{"no": "message"}]}])
def test_malformed_completions_are_protocol_errors(body):
    with pytest.raises(UpstreamError) as caught:
        decode_completion(body)
    assert caught.value.kind is FailureKind.PROTOCOL


def test_chunk_content_detection():
    role_only = decode_chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    text = decode_chunk({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]})
    tool = decode_chunk({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]})
    assert not role_only.has_content and text.has_content and tool.has_content
    assert role_only.choices[0]["finish_reason"] is None
