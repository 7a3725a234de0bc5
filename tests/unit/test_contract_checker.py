"""The OpenAPI contract checker rejects documents that break the OpenRouter spec and accepts good ones."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.support.contract import (
    ContractChecker,
    ContractSession,
    ContractTransport,
    default_checker,
    validate_response,
    validate_stream_chunk,
    validating_http_client,
)

CHAT_RESULT: dict[str, Any] = {
    "id": "gen-123",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "acme/mock-model",
    "system_fingerprint": None,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop", "logprobs": None}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
CHUNK: dict[str, Any] = {
    "id": "gen-123",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "acme/mock-model",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}],
}


@pytest.fixture(scope="module")
def checker() -> ContractChecker:
    return default_checker()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream() as upstream:
        yield upstream


def test_a_good_chat_result_passes_and_is_counted(checker: ContractChecker) -> None:
    before = checker.validated
    validate_response("POST", "/api/v1/chat/completions", 200, CHAT_RESULT)
    assert checker.validated == before + 1


def test_a_chat_result_without_system_fingerprint_is_rejected() -> None:
    bad = {k: v for k, v in CHAT_RESULT.items() if k != "system_fingerprint"}
    with pytest.raises(AssertionError, match=r"\$: 'system_fingerprint' is a required property"):
        validate_response("POST", "/api/v1/chat/completions", 200, bad)


def test_the_message_lists_every_failing_json_path() -> None:
    bad = copy.deepcopy(CHAT_RESULT)
    bad["choices"][0]["finish_reason"] = "done"
    bad["usage"]["total_tokens"] = "2"
    with pytest.raises(AssertionError) as caught:
        validate_response("POST", "/v1/chat/completions", 200, bad)
    assert "$.choices[0].finish_reason: 'done' is not one of" in str(caught.value)
    assert "$.usage.total_tokens: '2' is not of type 'integer'" in str(caught.value)


def test_a_stream_chunk_choice_without_finish_reason_is_rejected() -> None:
    bad = copy.deepcopy(CHUNK)
    del bad["choices"][0]["finish_reason"]
    with pytest.raises(AssertionError, match=r"\$\.choices\[0\]: 'finish_reason' is a required property"):
        validate_stream_chunk(bad)


def test_good_stream_chunks_pass_including_the_usage_only_chunk() -> None:
    validate_stream_chunk(CHUNK)
    validate_stream_chunk(
        {**CHUNK, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    )


def test_paths_match_spec_templates_behind_either_prefix(checker: ContractChecker) -> None:
    assert checker.template_for("/api/v1/models/openai/gpt-4o/endpoints") == "/models/{author}/{slug}/endpoints"
    assert checker.template_for("/v1/models?category=x") == "/models"
    assert checker.template_for("/api/v1/models/count") == "/models/count"
    assert checker.template_for("/api/v1/auth/key") == "/key"
    assert checker.template_for("/healthz") is None


def test_error_bodies_are_checked_against_the_status_schema() -> None:
    validate_response("GET", "/api/v1/key", 401, {"error": {"code": 401, "message": "No auth"}})
    with pytest.raises(AssertionError, match="'code' is a required property"):
        validate_response("GET", "/api/v1/key", 401, {"error": {"message": "No auth"}})


def test_provider_names_are_open_but_still_typed(checker: ContractChecker) -> None:
    pointer = "/components/schemas/ProviderName"
    checker.check(pointer, "acme", "operator provider")  # not in OpenRouter's list, and that is fine
    with pytest.raises(AssertionError, match="is not of type 'string'"):
        checker.check(pointer, 42, "provider")


def test_unknown_operations_and_undocumented_statuses_fail() -> None:
    with pytest.raises(AssertionError, match="not an operation"):
        validate_response("GET", "/api/v1/nope", 200, {})
    with pytest.raises(AssertionError, match="status 418 is not documented"):
        validate_response("GET", "/api/v1/key", 418, {})


def test_sse_feed_skips_comments_and_done_and_validates_chunks_split_anywhere(checker: ContractChecker) -> None:
    expectation = checker.expect("POST", "/api/v1/chat/completions", 200, "text/event-stream; charset=utf-8")
    assert expectation is not None and expectation.stream
    stream = f": OPENROUTER PROCESSING\n\ndata: {json.dumps(CHUNK)}\r\n\r\ndata: [DONE]\n\n".encode()
    for i in range(0, len(stream), 7):
        expectation.feed(stream[i : i + 7])
    assert (expectation.chunks, expectation.done) == (1, True)

    bad = {**CHUNK, "object": "chat.completion"}
    with pytest.raises(AssertionError, match="chunk #2"):
        expectation.feed(f"data: {json.dumps(bad)}\n\n".encode())


def _mock_server(body: Any, content_type: str = "application/json") -> httpx2.MockTransport:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.MockTransport(
        lambda request: httpx2.Response(200, content=payload, headers={"content-type": content_type})
    )


def test_the_openai_sdk_transport_rejects_a_bad_response_before_the_sdk_parses_it() -> None:
    bad = {k: v for k, v in CHAT_RESULT.items() if k != "system_fingerprint"}
    transport = ContractTransport(inner=_mock_server(bad))
    with (
        openai.OpenAI(
            base_url="http://gw.test/api/v1", api_key="k", http_client=httpx2.Client(transport=transport)
        ) as sdk,
        pytest.raises(AssertionError, match="system_fingerprint"),
    ):
        sdk.chat.completions.create(model="acme/mock-model", messages=[{"role": "user", "content": "x"}])


def test_the_transport_rejects_a_bad_sse_chunk_while_streaming() -> None:
    bad = copy.deepcopy(CHUNK)
    del bad["choices"][0]["finish_reason"]
    sse = f"data: {json.dumps(CHUNK)}\n\ndata: {json.dumps(bad)}\n\ndata: [DONE]\n\n".encode()
    client = httpx2.Client(transport=ContractTransport(inner=_mock_server(sse, "text/event-stream")))
    with openai.OpenAI(base_url="http://gw.test/api/v1", api_key="k", http_client=client) as sdk:
        stream = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
        with pytest.raises(AssertionError, match="finish_reason"):
            list(stream)


def test_sdk_and_requests_wrappers_check_real_loopback_traffic(
    checker: ContractChecker, fake: FakeOpenAIUpstream
) -> None:
    # The fake speaks OpenAI's dialect under /v1, which OpenRouter's chat schema also accepts.
    hello = [{"role": "user", "content": "hello"}]
    before = dict(checker.counts)
    with openai.OpenAI(
        base_url=fake.base_url, api_key=fake.api_key, http_client=validating_http_client(checker)
    ) as sdk:
        sdk.chat.completions.create(model="mock-model", messages=hello)
        chunks = list(sdk.chat.completions.create(model="mock-model", messages=hello, stream=True))
    with ContractSession(fake.base_url, fake.api_key, checker) as session:
        lines = list(
            session.post(
                "chat/completions", json={"model": "mock-model", "messages": hello, "stream": True}
            ).iter_lines()
        )
        session.post("chat/completions", json={"model": "mock-model", "messages": hello}).raise_for_status()

    assert checker.counts["response"] - before.get("response", 0) == 2
    assert checker.counts["chunk"] - before.get("chunk", 0) == len(chunks) + sum(
        1 for line in lines if line.startswith(b"data: {")
    )
