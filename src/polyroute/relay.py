"""The one use case: authenticate -> plan -> call with fallback -> price -> record.

Streaming and non-streaming share the attempt plan and the failure rules: before the first
content token any retryable failure moves on to the next attempt; a failure caused by the
request itself (400/404/413/422 from the upstream) is never retried; after the first content
token nothing switches silently: the stream ends with an error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from polyroute.accounts.types import ApiKey
from polyroute.billing.pricing import Cost, cost_of
from polyroute.billing.token_estimate import estimate_prompt_tokens
from polyroute.catalog.catalog import Catalog
from polyroute.domain.chat import ChatRequest, Chunk, Completion, Usage
from polyroute.domain.errors import BadRequest, GatewayError
from polyroute.providers.errors import UpstreamError
from polyroute.providers.registry import ProviderPool
from polyroute.relay_failures import is_request_fault, upstream_failure
from polyroute.routing.plan import Attempt, plan_attempts
from polyroute.usage_log.writer import GenerationWriter


class Keepalive:
    """Emitted while waiting for the first token, so the HTTP layer can send a comment."""


KEEPALIVE = Keepalive()


@dataclass(slots=True)
class ChatResult:
    completion: Completion
    attempt: Attempt
    usage: Usage
    cost: Cost


@dataclass(slots=True)
class ChunkEvent:
    chunk: Chunk
    attempt: Attempt


@dataclass(slots=True)
class StreamEnd:
    """Last event of a stream: what was delivered, what it cost, and the error if it failed."""

    attempt: Attempt
    usage: Usage
    cost: Cost
    error: GatewayError | None = None


StreamEvent = Keepalive | ChunkEvent | StreamEnd


@dataclass(slots=True)
class CallInfo:
    generation_id: str
    key: ApiKey
    started_s: float  # perf_counter at arrival


class Relay:
    def __init__(
        self, catalog: Catalog, providers: ProviderPool, records: GenerationWriter, *, keepalive_s: float
    ) -> None:
        self.catalog = catalog
        self._providers = providers
        self._records = records
        self._keepalive_s = keepalive_s

    def plan(self, request: ChatRequest) -> list[Attempt]:
        # Without `model`: the first local model (the account's own default comes with settings).
        model = request.model or self.catalog.default_model_id()
        if not model:
            raise BadRequest('No model specified: set `model` (e.g. "openai/gpt-4o")')
        return plan_attempts(self.catalog, [model, *request.models])

    async def complete(self, call: CallInfo, request: ChatRequest) -> ChatResult:
        attempts = self.plan(request)
        failures: list[tuple[Attempt, UpstreamError]] = []
        for attempt in attempts:
            provider = self._providers.get(attempt.provider)
            try:
                completion = await provider.complete(request, attempt.endpoint)
            except UpstreamError as error:
                failures.append((attempt, error))
                if is_request_fault(error):
                    break
                continue
            usage = completion.usage or _estimate_usage(request, completion)
            cost = cost_of(usage, attempt.endpoint.pricing)
            finish = completion.choices[0] if completion.choices else {}
            self._record(call, request, attempt, usage, cost, status="ok", choice=finish, ttft_s=None)
            return ChatResult(completion, attempt, usage, cost)
        failure = upstream_failure(failures)
        self._record_failure(call, request, failures, failure)
        raise failure

    async def stream(self, call: CallInfo, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Raises GatewayError before its first event if no attempt could start."""
        attempts = self.plan(request)
        failures: list[tuple[Attempt, UpstreamError]] = []
        for attempt in attempts:
            upstream = self._providers.get(attempt.provider).stream(request, attempt.endpoint)
            preamble: list[Chunk] = []
            waiting = _with_keepalive(upstream, self._keepalive_s)
            try:
                async for item in waiting:
                    if item is None:
                        yield KEEPALIVE
                        continue
                    preamble.append(item)
                    if item.has_content or item.usage is not None or _finished(item):
                        break
            except UpstreamError as error:
                await upstream.aclose()
                failures.append((attempt, error))
                if is_request_fault(error):
                    break
                continue
            except BaseException:
                await upstream.aclose()
                raise
            finally:
                await waiting.aclose()
            # Explicit close: an abandoned inner generator would only be closed by the GC.
            delivery = self._deliver(call, request, attempt, upstream, preamble)
            try:
                async for event in delivery:
                    yield event
            finally:
                await delivery.aclose()
            return
        failure = upstream_failure(failures)
        self._record_failure(call, request, failures, failure)
        raise failure

    async def _deliver(
        self,
        call: CallInfo,
        request: ChatRequest,
        attempt: Attempt,
        upstream: AsyncGenerator[Chunk, None],
        preamble: list[Chunk],
    ) -> AsyncGenerator[StreamEvent, None]:
        """Relay the committed attempt; from here on failures end the stream with an error."""
        tracker = _StreamTracker()
        ttft_s = time.perf_counter() - call.started_s
        status, error = "cancelled", None
        try:
            for chunk in preamble:
                tracker.see(chunk)
                yield ChunkEvent(chunk, attempt)
            try:
                async for chunk in upstream:
                    tracker.see(chunk)
                    yield ChunkEvent(chunk, attempt)
                status = "ok"
            except UpstreamError as upstream_error:
                status, error = "error", upstream_failure([(attempt, upstream_error)])
            usage = tracker.usage(request)
            cost = cost_of(usage, attempt.endpoint.pricing)
            yield StreamEnd(attempt, usage, cost, error)
        finally:
            await upstream.aclose()
            usage = tracker.usage(request)
            self._record(
                call,
                request,
                attempt,
                usage,
                cost_of(usage, attempt.endpoint.pricing),
                status=status,
                choice=tracker.last_finish,
                ttft_s=ttft_s,
                error_code=error.status if error else None,
            )

    def _record(
        self,
        call: CallInfo,
        request: ChatRequest,
        attempt: Attempt,
        usage: Usage,
        cost: Cost,
        *,
        status: str,
        choice: dict[str, Any],
        ttft_s: float | None,
        error_code: int | None = None,
    ) -> None:
        latency_ms = int((time.perf_counter() - call.started_s) * 1000)
        self._records.add(
            {
                "id": call.generation_id,
                "account_id": call.key.account_id,
                "key_hash": call.key.hash,
                "model": attempt.model.id,
                "provider": attempt.provider.slug,
                "upstream_model": attempt.endpoint.upstream_id,
                "streamed": request.stream,
                "status": status,
                "finish_reason": choice.get("finish_reason"),
                "native_finish_reason": choice.get("native_finish_reason"),
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "cost_pusd": cost.total_pusd,
                "latency_ms": latency_ms,
                "ttft_ms": None if ttft_s is None else int(ttft_s * 1000),
                "http_referer": request.attribution.referer,
                "app_title": request.attribution.title,
                "error_code": error_code,
            }
        )

    def _record_failure(
        self,
        call: CallInfo,
        request: ChatRequest,
        failures: list[tuple[Attempt, UpstreamError]],
        error: GatewayError,
    ) -> None:
        if not failures:
            return
        attempt = failures[-1][0]
        self._record(
            call,
            request,
            attempt,
            Usage(),
            Cost(0, 0),
            status="error",
            choice={"finish_reason": "error"},
            ttft_s=None,
            error_code=error.status,
        )


def _finished(chunk: Chunk) -> bool:
    return any(choice.get("finish_reason") for choice in chunk.choices)


def _estimate_usage(request: ChatRequest, completion: Completion) -> Usage:
    from polyroute.billing.token_estimate import estimate_text_tokens

    text = "".join(str(c.get("message", {}).get("content") or "") for c in completion.choices)
    return Usage(estimate_prompt_tokens(request.messages), estimate_text_tokens(text))


class _StreamTracker:
    """Keeps the upstream's usage (or counts content chunks when it reports none)."""

    __slots__ = ("content_chunks", "last_finish", "reported")

    def __init__(self) -> None:
        self.reported: Usage | None = None
        self.content_chunks = 0
        self.last_finish: dict[str, Any] = {}

    def see(self, chunk: Chunk) -> None:
        if chunk.usage is not None:
            self.reported = chunk.usage
        if chunk.has_content:
            self.content_chunks += 1
        for choice in chunk.choices:
            if choice.get("finish_reason"):
                self.last_finish = choice

    def usage(self, request: ChatRequest) -> Usage:
        if self.reported is not None:
            return self.reported
        return Usage(estimate_prompt_tokens(request.messages), self.content_chunks)


async def _with_keepalive(iterator: AsyncIterator[Chunk], interval_s: float) -> AsyncGenerator[Chunk | None, None]:
    """Yield the iterator's items, and None whenever `interval_s` passes without one."""
    while True:
        pending = asyncio.ensure_future(anext(iterator))
        try:
            while True:
                done, _ = await asyncio.wait((pending,), timeout=interval_s)
                if done:
                    break
                yield None
        finally:
            if not pending.done():
                pending.cancel()
        try:
            item = pending.result()
        except StopAsyncIteration:
            return
        yield item
