"""The `local` dialect under the same streaming contract as the remote adapters, with a real model.

The local provider has no fake to inject faults into; its own failure modes are covered here:
prompts longer than the context, a full queue, and a client that stops reading.
"""

from __future__ import annotations

import asyncio

import pytest
from tests.providers.harness import assemble, from_completion

from polyroute.catalog.local_models import local_models, local_provider
from polyroute.domain.chat import ChatRequest
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.local.provider import LocalProvider
from polyroute.providers.registry import ProviderContext
from polyroute.settings import Timeouts

QUESTION = [{"role": "user", "content": "What is the capital of China?"}]


@pytest.fixture(scope="module")
def provider():
    spec = local_provider({})
    instance = LocalProvider(spec, ProviderContext(session=None, timeouts=Timeouts()))  # type: ignore[arg-type]
    yield instance
    asyncio.run(instance.aclose())


@pytest.fixture(scope="module")
def smol():
    return next(m for m in local_models() if m.id == "huggingfacetb/smollm2-135m-instruct").endpoints[0]


def chat(max_tokens=24, **params):
    return ChatRequest(model="x", messages=QUESTION, max_tokens=max_tokens, params={"temperature": 0, **params})


async def test_streamed_and_not_are_identical_at_temperature_zero(provider, smol):
    streamed = assemble([chunk async for chunk in provider.stream(chat(), smol)])
    whole = from_completion(await provider.complete(chat(), smol))
    assert streamed.comparable() == whole.comparable()
    assert "Beijing" in streamed.message["content"]
    assert streamed.usage is not None and streamed.usage.completion_tokens == streamed.content_chunks


async def test_max_tokens_gives_length_and_a_stop_sequence_gives_stop(provider, smol):
    capped = assemble([chunk async for chunk in provider.stream(chat(max_tokens=2), smol)])
    assert capped.finish_reason == "length" and capped.usage.completion_tokens == 2
    stopped = assemble([chunk async for chunk in provider.stream(chat(stop=["Beijing"]), smol)])
    assert stopped.finish_reason == "stop" and "Beijing" not in (stopped.message["content"] or "")


async def test_a_prompt_longer_than_the_context_is_a_request_fault(provider, smol):
    huge = ChatRequest(model="x", messages=[{"role": "user", "content": "word " * 5000}], max_tokens=5)
    with pytest.raises(UpstreamError) as caught:
        await provider.complete(huge, smol)
    assert caught.value.kind is FailureKind.HTTP and caught.value.status == 400


async def test_a_reader_that_stops_frees_the_model_for_the_next_request(provider, smol):
    stream = provider.stream(chat(max_tokens=400, temperature=0.9), smol)
    await anext(stream)
    await stream.aclose()
    answer = assemble([chunk async for chunk in provider.stream(chat(max_tokens=5), smol)])
    assert answer.usage.completion_tokens <= 5
