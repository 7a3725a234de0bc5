"""The conformance suite's fault half: every adapter maps upstream errors, garbage, slowness, stalls,
cuts, malformed events and mid-stream error events onto the same UpstreamError kinds, at the same
point of the stream, so the relay's failover and error-event rules work alike for every dialect.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from tests.providers.conftest import context_for
from tests.providers.harness import DIALECTS, Dialect, dialects_for, endpoint

from polyroute.domain.chat import ChatRequest, Chunk
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.registry import FACTORIES
from polyroute.relay_failures import is_request_fault
from polyroute.settings import Timeouts

HELLO = [{"role": "user", "content": "hello big world"}]
MODES = pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
# scenario -> HTTP status each dialect's API answers with (Gemini and Bedrock have no 529; Bedrock refuses a
# bad key with 403).
STATUS = {
    "error-400": {"openai": 400, "anthropic": 400, "gemini": 400, "bedrock": 400},
    "error-401": {"openai": 401, "anthropic": 401, "gemini": 401, "bedrock": 403},
    "error-429": {"openai": 429, "anthropic": 429, "gemini": 429, "bedrock": 429},
    "error-500": {"openai": 500, "anthropic": 500, "gemini": 500, "bedrock": 500},
    "error-503": {"openai": 503, "anthropic": 503, "gemini": 503, "bedrock": 503},
    "error-529": {"anthropic": 529, "gemini": 503, "bedrock": 503},
}


def chat() -> ChatRequest:
    return ChatRequest(model="conf/model", messages=HELLO)


async def call(adapter: Any, ep: Any, stream: bool) -> tuple[list[Chunk], UpstreamError]:
    """Run until the adapter raises; returns the chunks delivered before the failure and the error."""
    chunks: list[Chunk] = []
    with pytest.raises(UpstreamError) as caught:
        if stream:
            async for chunk in adapter.stream(chat(), ep):
                chunks.append(chunk)
        else:
            await adapter.complete(chat(), ep)
    return chunks, caught.value


def content_count(chunks: list[Chunk]) -> int:
    return sum(chunk.has_content for chunk in chunks)


def error_cases() -> list[Any]:
    return [
        pytest.param(d, scenario, id=f"{d.id}-{scenario}")
        for scenario, by_dialect in STATUS.items()
        for d in DIALECTS
        if d.name in by_dialect
    ]


@pytest.mark.parametrize(("dialect", "scenario"), error_cases())
@MODES
async def test_upstream_error_statuses_map_to_upstream_errors(dialect: Dialect, scenario, stream, adapter_for, fake_of):
    fake = fake_of(dialect)
    chunks, error = await call(adapter_for(dialect), endpoint(dialect, scenario), stream)
    status = STATUS[scenario][dialect.name]
    assert (error.kind, error.status) == (FailureKind.HTTP, status)
    assert error.retryable == (status in (408, 409, 429) or status >= 500)
    assert error.raw and (getattr(fake, "api_key", None) or "-no-key-") not in error.raw
    assert chunks == []
    if status == 429:
        assert error.retry_after_s == dialect.retry_after_s


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.id)
@MODES
async def test_unknown_model_is_a_request_fault(dialect: Dialect, stream, adapter_for):
    _chunks, error = await call(adapter_for(dialect), endpoint(dialect, "no-such-model"), stream)
    assert error.status == dialect.unknown_model_status and is_request_fault(error)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.id)
@MODES
async def test_garbage_is_a_protocol_failure(dialect: Dialect, stream, adapter_for):
    chunks, error = await call(adapter_for(dialect), endpoint(dialect, "garbage"), stream)
    assert error.kind is FailureKind.PROTOCOL and error.retryable
    assert content_count(chunks) == 0


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.id)
@MODES
async def test_slow_first_byte_within_the_timeout_is_fine_beyond_it_times_out(
    dialect: Dialect, stream, session, lean, fake_of
):
    timeouts = Timeouts(connect_s=2, first_byte_s=0.6, idle_s=0.6)
    adapter = FACTORIES[dialect.name](dialect.spec(fake_of(dialect)), context_for(dialect, session, lean, timeouts))
    if stream:
        chunks = [chunk async for chunk in adapter.stream(chat(), endpoint(dialect, "slow-200"))]
        assert content_count(chunks) == 4
    else:
        assert (await adapter.complete(chat(), endpoint(dialect, "slow-200"))).choices
    started = time.monotonic()
    _chunks, error = await call(adapter, endpoint(dialect, "slow-3000"), stream)
    assert error.kind is FailureKind.TIMEOUT and time.monotonic() - started < 2.5


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.id)
@pytest.mark.parametrize("after", [0, 2])
@pytest.mark.parametrize("fault", ["stall-after", "cut-after"])
async def test_stream_stall_or_cut_fails_after_exactly_the_content_sent(dialect: Dialect, fault, after, adapter_for):
    chunks, error = await call(adapter_for(dialect), endpoint(dialect, f"{fault}-{after}"), True)
    expected = FailureKind.TIMEOUT if fault == "stall-after" else FailureKind.PROTOCOL
    assert error.kind is expected and error.retryable
    assert content_count(chunks) == after
    assert not any(choice.get("finish_reason") for chunk in chunks for choice in chunk.choices)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.id)
@pytest.mark.parametrize("fault", ["stall-after-2", "cut-after-2"])
async def test_body_broken_half_way_fails_a_complete_call(dialect: Dialect, fault, adapter_for):
    _chunks, error = await call(adapter_for(dialect), endpoint(dialect, fault), False)
    assert error.kind in (FailureKind.TIMEOUT, FailureKind.PROTOCOL) and error.retryable


@pytest.mark.parametrize("dialect", dialects_for("malformed-after"), ids=lambda d: d.id)
@pytest.mark.parametrize("after", [0, 2])
async def test_malformed_event_mid_stream_is_a_protocol_failure(dialect: Dialect, after, adapter_for):
    chunks, error = await call(adapter_for(dialect), endpoint(dialect, f"malformed-after-{after}"), True)
    assert error.kind is FailureKind.PROTOCOL
    assert content_count(chunks) == after


@pytest.mark.parametrize("dialect", dialects_for("overloaded-after"), ids=lambda d: d.id)
async def test_error_event_mid_stream_carries_the_upstream_status(dialect: Dialect, adapter_for):
    chunks, error = await call(adapter_for(dialect), endpoint(dialect, "overloaded-after-2"), True)
    assert (error.kind, error.status) == (FailureKind.HTTP, dialect.overloaded_status)
    assert error.retryable and error.raw
    assert content_count(chunks) == 2


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.id)
async def test_closing_a_stream_early_drops_the_upstream_connection(dialect: Dialect, adapter_for, fake_of):
    fake = fake_of(dialect)
    stream = adapter_for(dialect).stream(chat(), endpoint(dialect, "stall-after-2"))
    seen = 0
    async for chunk in stream:
        seen += chunk.has_content
        if seen == 2:
            break
    await stream.aclose()
    deadline = time.monotonic() + 3
    while not fake.disconnects and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert fake.disconnects, "the fake never saw the client go"
