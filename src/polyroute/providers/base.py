"""The Provider protocol: what every upstream adapter offers the relay."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from polyroute.catalog.types import EndpointSpec, ProviderSpec
from polyroute.domain.chat import ChatRequest, Chunk, Completion


class Provider(Protocol):
    """One upstream host speaking one dialect.

    Both methods raise `UpstreamError` on failure; `stream` may raise it mid-iteration.
    Closing the `stream` iterator early (client gone) must close the upstream connection.
    """

    spec: ProviderSpec

    async def complete(self, request: ChatRequest, endpoint: EndpointSpec) -> Completion: ...

    def stream(self, request: ChatRequest, endpoint: EndpointSpec) -> AsyncGenerator[Chunk, None]: ...

    async def aclose(self) -> None: ...
