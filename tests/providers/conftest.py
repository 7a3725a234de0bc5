"""Fixtures of the conformance suite: one running fake per dialect, an image host, and real adapters.

Adapters are the real provider classes from the registry, on an in-process aiohttp session with short
timeouts (first byte 1.5 s, idle 1 s), talking HTTP over loopback to the fakes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from tests.fakes.anthropic_upstream import FakeAnthropicUpstream
from tests.fakes.bedrock_upstream import FakeBedrockUpstream
from tests.fakes.gemini_upstream import FakeGeminiUpstream
from tests.fakes.image_host import ImageHost
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.fakes.scripted_model import example_value
from tests.providers.harness import Dialect, Result, assemble, from_completion

from polyroute.catalog.types import EndpointSpec
from polyroute.domain.chat import ChatRequest, Chunk
from polyroute.providers.base import Provider
from polyroute.providers.lean_http import LeanClient
from polyroute.providers.registry import FACTORIES, ProviderContext
from polyroute.settings import Timeouts

TIMEOUTS = Timeouts(connect_s=2, first_byte_s=1.5, idle_s=1, keepalive_s=1)
STALL_S = 20  # how long a stalled fake stays silent (well past the idle timeout)


class SchemaAwareOpenAIUpstream(FakeOpenAIUpstream):
    """The OpenAI fake, answering `response_format: json_schema` with schema-shaped JSON like the others."""

    @staticmethod
    def _reply_text(ex: Any, kind: str, n: int) -> str:
        fmt = ex.body.get("response_format") or {}
        if kind == "mock-model" and fmt.get("type") == "json_schema":
            return json.dumps(example_value(fmt["json_schema"]["schema"]))
        return FakeOpenAIUpstream._reply_text(ex, kind, n)


@pytest.fixture(scope="session")
def openai_fake() -> Iterator[FakeOpenAIUpstream]:
    with SchemaAwareOpenAIUpstream(stall_s=STALL_S) as fake:
        yield fake


@pytest.fixture(scope="session")
def anthropic_fake() -> Iterator[FakeAnthropicUpstream]:
    with FakeAnthropicUpstream(stall_s=STALL_S) as fake:
        yield fake


@pytest.fixture(scope="session")
def gemini_fake() -> Iterator[FakeGeminiUpstream]:
    with FakeGeminiUpstream(stall_s=STALL_S) as fake:
        yield fake


@pytest.fixture(scope="session")
def bedrock_fake() -> Iterator[FakeBedrockUpstream]:
    with FakeBedrockUpstream(stall_s=STALL_S) as fake:
        yield fake


@pytest.fixture(scope="session")
def image_host() -> Iterator[ImageHost]:
    with ImageHost() as host:
        yield host


@pytest.fixture
def fake_of(request: pytest.FixtureRequest) -> Callable[[Dialect], Any]:
    """The running fake of a dialect, cleared (requests, prompt cache, delay) on first use in a test."""
    cleared: set[str] = set()

    def get(dialect: Dialect) -> Any:
        fake = request.getfixturevalue(dialect.fake_fixture)
        if dialect.name not in cleared:
            cleared.add(dialect.name)
            fake.clear()
            fake.delay_s = 0.0
        return fake

    return get


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=2)) as client:
        yield client


@pytest.fixture
async def lean() -> AsyncIterator[LeanClient]:
    client = LeanClient(2)
    yield client
    await client.aclose()


def context_for(
    dialect: Dialect, session: aiohttp.ClientSession, lean: LeanClient, timeouts: Timeouts
) -> ProviderContext:
    return ProviderContext(session, timeouts, lean if dialect.lean else None)


@pytest.fixture
def adapter_for(
    session: aiohttp.ClientSession, lean: LeanClient, fake_of: Callable[[Dialect], Any]
) -> Callable[[Dialect], Provider]:
    def make(dialect: Dialect) -> Provider:
        return FACTORIES[dialect.name](dialect.spec(fake_of(dialect)), context_for(dialect, session, lean, TIMEOUTS))

    return make


Run = Callable[[Provider, ChatRequest, EndpointSpec, bool], Awaitable[Result]]


async def collect(provider: Provider, request: ChatRequest, endpoint: EndpointSpec) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request, endpoint)]


@pytest.fixture
def run() -> Run:
    """Call the adapter streamed (chunks assembled under the streaming contract) or not."""

    async def call(provider: Provider, request: ChatRequest, endpoint: EndpointSpec, stream: bool) -> Result:
        if stream:
            return assemble(await collect(provider, request, endpoint))
        return from_completion(await provider.complete(request, endpoint))

    return call
