"""The Bedrock fake speaks Converse and ConverseStream: `boto3` signs requests the fake accepts and parses
every response and event-stream frame it sends; a wrong signature is refused like AWS refuses it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from tests.fakes.bedrock_upstream import FakeBedrockUpstream

HELLO = [{"role": "user", "content": [{"text": "hello big world"}]}]
WEATHER = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}}]}  # fmt: skip


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrockUpstream]:
    with FakeBedrockUpstream(session_token="fake-session-token", stall_s=5) as upstream:
        yield upstream


def client_for(fake: FakeBedrockUpstream, **overrides: str) -> Any:
    credentials = {
        "aws_access_key_id": fake.credentials.access_key,
        "aws_secret_access_key": fake.credentials.secret_key,
        "aws_session_token": fake.credentials.token,
        **overrides,
    }
    config = Config(retries={"max_attempts": 1}, read_timeout=10)
    return boto3.client("bedrock-runtime", endpoint_url=fake.base_url, region_name=fake.region, config=config,
                        **credentials)  # fmt: skip


@pytest.fixture
def client(fake: FakeBedrockUpstream) -> Any:
    fake.clear()
    return client_for(fake)


def test_converse_echoes_with_usage(client: Any) -> None:
    response = client.converse(modelId="mock-model", messages=HELLO, system=[{"text": "be brief"}])
    assert response["output"]["message"]["content"] == [{"text": "Echo: hello big world"}]
    assert response["stopReason"] == "end_turn"
    assert response["usage"] == {"inputTokens": 5, "outputTokens": 4, "totalTokens": 9}


def test_converse_stream_events_are_parsed_by_boto3(client: Any) -> None:
    events = list(client.converse_stream(modelId="mock-model", messages=HELLO)["stream"])
    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Echo: hello big world"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 4


def test_streamed_tool_use_arrives_in_fragments(client: Any) -> None:
    events = list(client.converse_stream(modelId="anthropic.tool-model", messages=HELLO, toolConfig=WEATHER)["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"
    pieces = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e]
    assert len(pieces) > 1 and "".join(pieces) == '{"city": "test"}'
    assert next(e for e in events if "messageStop" in e)["messageStop"]["stopReason"] == "tool_use"


def test_thinking_for_claude_models(client: Any) -> None:
    response = client.converse(
        modelId="us.anthropic.mock-model",
        messages=HELLO,
        inferenceConfig={"maxTokens": 2048},
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    reasoning = response["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"]
    assert reasoning["text"] == "Thinking about: hello big world" and reasoning["signature"]


def test_wrong_secret_fails_the_signature_check(fake: FakeBedrockUpstream) -> None:
    fake.clear()
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client_for(fake, aws_secret_access_key="not-the-secret").converse(modelId="mock-model", messages=HELLO)
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert fake.signature_failures


def test_missing_session_token_is_refused(fake: FakeBedrockUpstream) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client_for(fake, aws_session_token="").converse(modelId="mock-model", messages=HELLO)
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


@pytest.mark.parametrize(
    ("model", "code", "status"),
    [
        ("error-400", "ValidationException", 400),
        ("error-401", "AccessDeniedException", 403),
        ("error-429", "ThrottlingException", 429),
        ("error-500", "InternalServerException", 500),
        ("error-503", "ServiceUnavailableException", 503),
        ("no-such-model", "ValidationException", 400),
    ],
)
def test_error_scenarios_use_aws_error_shapes(client: Any, model: str, code: str, status: int) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.converse(modelId=model, messages=HELLO)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        ([*HELLO, *HELLO], "alternate"),
        ([{"role": "user", "content": [{"text": "  "}]}], "blank"),
        ([*HELLO, {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "x", "input": {}}}]},
          {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}]}],
         "toolConfig"),
    ],
)  # fmt: skip
def test_requests_converse_refuses_are_refused(client: Any, messages: list[Any], needle: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.converse(modelId="mock-model", messages=messages)
    assert needle in caught.value.response["Error"]["Message"]


def test_exception_frame_mid_stream_reaches_boto3(client: Any) -> None:
    stream = client.converse_stream(modelId="overloaded-after-2", messages=HELLO)["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        list(stream)
    assert caught.value.response["Error"]["Code"] == "serviceUnavailableException"


def test_frame_with_a_bad_crc_fails_in_boto3(client: Any) -> None:
    stream = client.converse_stream(modelId="malformed-after-2", messages=HELLO)["stream"]
    with pytest.raises(Exception, match=r"[Cc]hecksum|CRC|crc"):
        list(stream)
