"""Dialect -> adapter factory, and the pool of live provider instances the relay calls."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from polyroute.catalog.types import ProviderSpec
from polyroute.providers.base import Provider
from polyroute.providers.lean_http import LeanClient
from polyroute.settings import Timeouts


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What an adapter needs from the process: the shared HTTP session and timeouts.

    `lean` is the lean HTTP/1.1 client for model calls (ADR 0005); None while tracing is on, whose
    `traceparent` hook lives in the aiohttp session."""

    session: aiohttp.ClientSession
    timeouts: Timeouts
    lean: LeanClient | None = None


ProviderFactory = Callable[[ProviderSpec, ProviderContext], Provider]


def _openai(spec: ProviderSpec, ctx: ProviderContext) -> Provider:
    from polyroute.providers.openai_compat.provider import OpenAICompatProvider

    return OpenAICompatProvider(spec, ctx)


def _local(spec: ProviderSpec, ctx: ProviderContext) -> Provider:
    from polyroute.providers.local.provider import LocalProvider

    return LocalProvider(spec, ctx)


def _anthropic(spec: ProviderSpec, ctx: ProviderContext) -> Provider:
    from polyroute.providers.anthropic.provider import AnthropicProvider

    return AnthropicProvider(spec, ctx)


def _gemini(spec: ProviderSpec, ctx: ProviderContext) -> Provider:
    from polyroute.providers.gemini.provider import GeminiProvider

    return GeminiProvider(spec, ctx)


def _bedrock(spec: ProviderSpec, ctx: ProviderContext) -> Provider:
    from polyroute.providers.bedrock.provider import BedrockProvider

    return BedrockProvider(spec, ctx)


# Adding a dialect = one adapter package + one line here.
FACTORIES: dict[str, ProviderFactory] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "bedrock": _bedrock,
}
if importlib.util.find_spec("llama_cpp") is not None:  # the local dialect needs llama-cpp-python
    FACTORIES["local"] = _local


def supported_dialects() -> frozenset[str]:
    return frozenset(FACTORIES)


class ProviderPool:
    """Creates each provider once, on first use, sharing one pooled HTTP session."""

    def __init__(self, timeouts: Timeouts, trace_configs: Sequence[aiohttp.TraceConfig] = ()) -> None:
        self._timeouts = timeouts
        self._trace_configs = list(trace_configs)  # e.g. tracing's `traceparent` hook; none by default
        self._session: aiohttp.ClientSession | None = None
        self._lean = None if self._trace_configs else LeanClient(timeouts.connect_s)
        self._providers: dict[str, Provider] = {}

    def _context(self) -> ProviderContext:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
            # Per-phase timeouts are applied by the adapters; no total cap on a healthy stream.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeouts.connect_s)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                auto_decompress=True,
                trust_env=False,
                trace_configs=self._trace_configs or None,
            )
        return ProviderContext(self._session, self._timeouts, self._lean)

    def get(self, spec: ProviderSpec) -> Provider:
        provider = self._providers.get(spec.slug)
        if provider is None:
            provider = FACTORIES[spec.dialect](spec, self._context())
            self._providers[spec.slug] = provider
        return provider

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._lean is not None:
            await self._lean.aclose()
