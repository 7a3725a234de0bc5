"""The one use case: plan -> reserve -> call with fallback -> price -> settle and record.

Money: before any upstream call the ledger reserves the plan's worst case (or refuses with 402);
the request then ends in exactly one settle (the served attempt's charge, after zero-completion
insurance) or release (nothing served), written in one transaction with the generation record.
Only the attempt that delivered is ever charged, whatever failed before it.

Streaming and non-streaming share the attempt plan and the failure rules: before the first
content token any retryable failure moves on to the next attempt; a failure caused by the
request itself (400/404/413/422 from the upstream) is never retried; after the first content
token nothing switches silently: the stream ends with an error event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from polyroute.accounts.types import ApiKey
from polyroute.billing.ledger import Hold, Ledger
from polyroute.billing.ledger_store import ClosedReservation, KeyBudget
from polyroute.billing.pricing import NO_CHARGE, Cost, charge_for
from polyroute.billing.reservation import endpoint_terms
from polyroute.billing.token_estimate import estimate_prompt_tokens, estimate_text_tokens, prompt_token_bound
from polyroute.catalog.catalog import Catalog
from polyroute.domain.chat import ChatRequest, Chunk, Completion, Usage
from polyroute.domain.errors import BadRequest, GatewayError
from polyroute.observability import tracing
from polyroute.observability.metrics import observe_generation
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.registry import ProviderPool
from polyroute.relay_failures import is_request_fault, upstream_failure
from polyroute.routing.capabilities import capable_attempts
from polyroute.routing.health import HealthSnapshot, HealthState, HealthStore, MemoryHealth
from polyroute.routing.plan import Attempt, is_fixed, plan_attempts, uses_endpoint_stats
from polyroute.routing.preferences import parse_preferences
from polyroute.routing.retry import RetryBudget, RetryPolicy, retry_wait_s


class Keepalive:
    """Emitted while waiting for the first token, so the HTTP layer can send a comment."""


KEEPALIVE = Keepalive()
_HALF_OPEN = HealthState.HALF_OPEN  # read once: each `HealthState.X` goes through EnumType.__getattr__


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


def _worth_retrying_in_place(error: UpstreamError) -> bool:
    """Same endpoint again only when it said when (Retry-After) or the connection never happened;
    other failures already moved on to the next endpoint, and repeating them would only add load."""
    if not error.retryable:
        return False
    return error.kind is FailureKind.CONNECT or error.retry_after_s is not None


@dataclass(frozen=True, slots=True)
class _FixedPlan:
    keys: tuple[tuple[str, str], ...]  # every endpoint of the models, for the health snapshot
    window: bool
    attempts: tuple[Attempt, ...]


class _AttemptLoop:
    """Runs one request's plan: each attempt once, then (retry budget and Retry-After permitting) one
    more round over the endpoints that failed with a Retry-After or a connect error, never beyond the
    per-request attempt budget. Timeouts are not retried in place: a silent upstream costs one
    first-byte timeout."""

    def __init__(self, relay: Relay, attempts: list[Attempt], probes: set[tuple[str, str]]) -> None:
        self._relay = relay
        self.queue = list(attempts)
        self.failures: list[tuple[Attempt, UpstreamError]] = []
        self._round_failures: list[tuple[Attempt, UpstreamError]] = []
        self._tried = 0
        self._round = 0
        self._probes = probes
        self._attempted: set[tuple[str, str]] = set()
        self._faulted_models: set[str] = set()

    def next(self) -> Attempt | None:
        if not self.queue or self._tried >= self._relay.retry_policy.max_attempts:
            return None
        self._tried += 1
        attempt = self.queue.pop(0)
        self._attempted.add(attempt.key)
        return attempt

    def failed(self, attempt: Attempt, error: UpstreamError) -> bool:
        """Record the failure; False when nothing is left to try.

        A fault of the request itself (400, 413, ...) is never retried on another endpoint of the same
        model, but the next model of the fallback chain is tried, as OpenRouter does: a prompt too long
        for one model's context may fit the next one's."""
        self.failures.append((attempt, error))
        if is_request_fault(error):
            self._relay.health.release_probe(attempt.key)
            self._faulted_models.add(attempt.model.id)
            self.queue = [a for a in self.queue if a.model.id != attempt.model.id]
            return bool(self.queue)
        self._relay.health.record_failure(attempt.key, retry_after_s=error.retry_after_s)
        self._round_failures.append((attempt, error))
        return True

    def retry_wait_s(self) -> float | None:
        """When the plan is used up: the wait before a retry round (queued), or None for no retry."""
        if self.queue or self._round >= 1 or self._tried >= self._relay.retry_policy.max_attempts:
            return None
        retry = [
            (a, e)
            for a, e in self._round_failures
            if _worth_retrying_in_place(e) and a.model.id not in self._faulted_models
        ]
        if not retry:
            return None
        retry_afters = [e.retry_after_s for _, e in retry if e.retry_after_s is not None]
        policy = self._relay.retry_policy
        wait = retry_wait_s(policy, self._round + 1, max(retry_afters) if retry_afters else None, self._relay.rng)
        if wait is None or not self._relay.retry_budget.withdraw():
            return None
        self._round += 1
        self._round_failures = []
        self.queue = list({a.key: a for a, _ in retry}.values())
        return wait

    def release_probes(self) -> None:
        for key in self._probes - self._attempted:
            self._relay.health.release_probe(key)


class Relay:
    def __init__(
        self,
        catalog: Catalog,
        providers: ProviderPool,
        ledger: Ledger,
        *,
        keepalive_s: float,
        health: HealthStore | None = None,
        rng: random.Random | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.catalog = catalog
        self._providers = providers
        self._ledger = ledger
        self._keepalive_s = keepalive_s
        self.health: HealthStore = health or MemoryHealth()
        self.rng = rng or random.Random()
        self.retry_policy = retry_policy or RetryPolicy()
        self.retry_budget = RetryBudget(self.retry_policy)
        # Plans that health and the random draw cannot change (one endpoint per model, default
        # preferences), by requested slug: planning one was about 2 % of a request's CPU (issue #9).
        # Bounded: only slugs the catalog resolved get here, and the catalog never changes.
        self._fixed_plans: dict[str, _FixedPlan] = {}

    def plan(self, request: ChatRequest) -> tuple[list[Attempt], HealthSnapshot]:
        """The attempts in order, and the endpoints' health they were planned with."""
        # Without `model`: the first local model (the account's own default comes with settings).
        model = request.model or self.catalog.default_model_id()
        if not model:
            raise BadRequest('No model specified: set `model` (e.g. "openai/gpt-4o")')
        simple = not request.provider and not request.models  # default preferences, the model's own chain
        fixed = self._fixed_plans.get(model) if simple else None
        if fixed is not None:
            health = self.health.snapshot(fixed.keys, window=fixed.window)
            return capable_attempts(request, fixed.attempts), health
        preferences = parse_preferences(request.provider)
        # No fallback models of its own: the operator's configured chain for the model, if any.
        slugs = [model, *(request.models or self.catalog.resolve(model)[0].fallbacks)]
        resolved = [self.catalog.resolve(s) for s in slugs]
        keys = [(m.id, e.provider) for m, _ in resolved for e in m.endpoints]
        window = uses_endpoint_stats(preferences, (variant for _, variant in resolved))
        health = self.health.snapshot(keys, window=window)
        sent = [*request.params, *(["max_tokens"] if request.max_tokens is not None else [])]
        planned = plan_attempts(self.catalog, slugs, preferences, health, self.rng, sent)
        if simple and is_fixed(self.catalog, resolved):
            self._fixed_plans[model] = _FixedPlan(tuple(keys), window, tuple(planned))
        # Drop endpoints that would refuse the body (images, tools, JSON schema) before any call.
        return capable_attempts(request, planned), health

    def _start(self, request: ChatRequest) -> tuple[list[Attempt], _AttemptLoop]:
        attempts, health = self.plan(request)
        self.retry_budget.deposit()
        probes = {a.key for a in attempts if health.of(a.key).state is _HALF_OPEN and self.health.claim_probe(a.key)}
        return attempts, _AttemptLoop(self, attempts, probes)

    async def _authorize(
        self, call: CallInfo, request: ChatRequest, attempts: list[Attempt]
    ) -> tuple[Hold, ChatRequest]:
        """Reserve the plan's worst case (402 if it cannot be covered); the request may get a max_tokens cap."""
        prompt_tokens = prompt_token_bound(request.messages, request.params)
        key = call.key
        with tracing.span("polyroute.reserve"):
            hold = await self._ledger.authorize(
                call.generation_id,
                KeyBudget(key.hash, key.account_id, key.limit_pusd, key.limit_reset),
                attempts[0].model.id,
                [endpoint_terms(attempt.endpoint, prompt_tokens) for attempt in attempts],
                prompt_tokens,
                request.max_tokens,
            )
        if hold.max_tokens is not None:
            request = dataclasses.replace(request, max_tokens=hold.max_tokens)
        return hold, request

    async def complete(self, call: CallInfo, request: ChatRequest) -> ChatResult:
        attempts, loop = self._start(request)
        try:
            hold, request = await self._authorize(call, request, attempts)
        except BaseException:
            loop.release_probes()
            raise
        try:
            while (attempt := loop.next()) is not None:
                provider = self._providers.get(attempt.provider)
                started_s = time.perf_counter()
                try:
                    tracing.attempt_started(attempt.provider.slug, attempt.model.id, attempt.endpoint.upstream_id)
                    completion = await provider.complete(request, attempt.endpoint)
                except UpstreamError as error:
                    tracing.attempt_failed(error.kind, error.status)
                    if not loop.failed(attempt, error):
                        break
                    if (wait_s := loop.retry_wait_s()) is not None:
                        await asyncio.sleep(wait_s)
                    continue
                usage = completion.usage or _estimate_usage(request, completion)
                latency_s = time.perf_counter() - started_s
                self.health.record_success(
                    attempt.key, ttft_s=None, latency_s=latency_s, completion_tokens=usage.completion_tokens
                )
                finish = completion.choices[0] if completion.choices else {}
                cost = charge_for(usage, attempt.endpoint.pricing, finish.get("finish_reason"))
                await self._finish(call, hold, request, attempt, usage, cost, status="ok", choice=finish, ttft_s=None)
                return ChatResult(completion, attempt, usage, cost)
            failure = upstream_failure(loop.failures)
            await self._finish_failure(call, hold, request, loop.failures, failure)
            raise failure
        finally:
            loop.release_probes()
            await self._ledger.finish(hold, 0)  # a no-op unless something unexpected ended the call

    async def stream(self, call: CallInfo, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Raises GatewayError (402 included) before its first event if no attempt could start."""
        attempts, loop = self._start(request)
        try:
            hold, request = await self._authorize(call, request, attempts)
        except BaseException:
            loop.release_probes()
            raise
        try:
            while (attempt := loop.next()) is not None:
                started_s = time.perf_counter()
                tracing.attempt_started(attempt.provider.slug, attempt.model.id, attempt.endpoint.upstream_id)
                upstream = self._providers.get(attempt.provider).stream(request, attempt.endpoint)
                # One task reads up to the first token while this generator sends keep-alives (one task
                # per stream, not one per chunk: issue #9).
                reading = asyncio.ensure_future(_preamble(upstream))
                try:
                    while not reading.done():
                        await asyncio.wait((reading,), timeout=self._keepalive_s)
                        if not reading.done():
                            yield KEEPALIVE
                    preamble = reading.result()
                except UpstreamError as error:
                    await upstream.aclose()
                    tracing.attempt_failed(error.kind, error.status)
                    if not loop.failed(attempt, error):
                        break
                    if (wait_s := loop.retry_wait_s()) is not None:
                        async for _ in _pause(wait_s, self._keepalive_s):
                            yield KEEPALIVE
                    continue
                except BaseException:
                    await _stop(reading)  # the upstream generator runs in it: it must stop before aclose
                    await upstream.aclose()
                    raise
                # Explicit close: an abandoned inner generator would only be closed by the GC.
                delivery = self._deliver(call, hold, request, attempt, upstream, preamble, started_s)
                try:
                    async for event in delivery:
                        yield event
                finally:
                    await delivery.aclose()
                return
            failure = upstream_failure(loop.failures)
            await self._finish_failure(call, hold, request, loop.failures, failure)
            raise failure
        finally:
            loop.release_probes()
            await self._ledger.finish(hold, 0)  # released if the client left before the first token

    async def _deliver(
        self,
        call: CallInfo,
        hold: Hold,
        request: ChatRequest,
        attempt: Attempt,
        upstream: AsyncGenerator[Chunk, None],
        preamble: list[Chunk],
        attempt_started_s: float,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Relay the committed attempt; from here on failures end the stream with an error.

        The charge is settled before the final usage chunk is yielded, so a client that saw
        `usage.cost` has been charged exactly that; a client that leaves early is charged for
        what was delivered up to then."""
        tracker = _StreamTracker()
        now_s = time.perf_counter()
        ttft_s = now_s - call.started_s
        attempt_ttft_s = now_s - attempt_started_s
        tracing.first_token(attempt_ttft_s)
        try:
            for chunk in preamble:
                tracker.see(chunk)
                yield ChunkEvent(chunk, attempt)
            error: GatewayError | None = None
            try:
                async for chunk in upstream:
                    tracker.see(chunk)
                    yield ChunkEvent(chunk, attempt)
            except UpstreamError as upstream_error:
                error = upstream_failure([(attempt, upstream_error)])
                self.health.record_failure(attempt.key, retry_after_s=upstream_error.retry_after_s)
            usage, cost = await self._finish_stream(call, hold, request, attempt, tracker, ttft_s, error)
            if error is None:
                latency_s = time.perf_counter() - attempt_started_s
                tokens = usage.completion_tokens
                self.health.record_success(
                    attempt.key, ttft_s=attempt_ttft_s, latency_s=latency_s, completion_tokens=tokens
                )
            yield StreamEnd(attempt, usage, cost, error)
        finally:
            await upstream.aclose()  # first: a client that left must stop the upstream at once
            if not hold.done:
                await self._finish_stream(call, hold, request, attempt, tracker, ttft_s, None, cancelled=True)

    async def _finish_stream(
        self,
        call: CallInfo,
        hold: Hold,
        request: ChatRequest,
        attempt: Attempt,
        tracker: _StreamTracker,
        ttft_s: float,
        error: GatewayError | None,
        *,
        cancelled: bool = False,
    ) -> tuple[Usage, Cost]:
        usage = tracker.usage(request)
        finish_reason = "error" if error else tracker.last_finish.get("finish_reason")
        cost = charge_for(usage, attempt.endpoint.pricing, finish_reason)
        status = "cancelled" if cancelled else "error" if error else "ok"
        await self._finish(
            call,
            hold,
            request,
            attempt,
            usage,
            cost,
            status=status,
            choice=tracker.last_finish,
            ttft_s=ttft_s,
            error_code=error.status if error else None,
        )
        return usage, cost

    async def _finish(
        self,
        call: CallInfo,
        hold: Hold,
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
        row = {
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
        observe_generation(row)  # metrics and the access log line (docs/operations.md)
        with tracing.span("polyroute.settle", {"polyroute.outcome": status}):
            await self._ledger.finish(hold, cost.total_pusd, row)

    async def _finish_failure(
        self,
        call: CallInfo,
        hold: Hold,
        request: ChatRequest,
        failures: list[tuple[Attempt, UpstreamError]],
        error: GatewayError,
    ) -> None:
        """Every attempt failed: release the hold and record the last attempt's failure."""
        if not failures:
            await self._ledger.finish(hold, 0)
            return
        await self._finish(
            call,
            hold,
            request,
            failures[-1][0],
            Usage(),
            NO_CHARGE,
            status="error",
            choice={"finish_reason": "error"},
            ttft_s=None,
            error_code=error.status,
        )


def void_record(closed: ClosedReservation) -> dict[str, Any]:
    """The generation record of a request whose process died: what it was and that it was voided."""
    return {
        "id": closed.ref,
        "account_id": closed.account_id,
        "key_hash": closed.key_hash,
        "model": closed.model,
        "provider": "unknown",
        "status": "void",
        "finish_reason": None,
        "created_at": closed.created_at,
    }


def _finished(chunk: Chunk) -> bool:
    return any(choice.get("finish_reason") for choice in chunk.choices)


def _estimate_usage(request: ChatRequest, completion: Completion) -> Usage:
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


async def _pause(duration_s: float, interval_s: float) -> AsyncGenerator[None, None]:
    """Wait `duration_s`, yielding every `interval_s` so the caller can send keep-alives."""
    deadline = time.perf_counter() + duration_s
    while (left_s := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(min(left_s, interval_s))
        if deadline - time.perf_counter() > 0:
            yield None


async def _preamble(upstream: AsyncIterator[Chunk]) -> list[Chunk]:
    """The chunks up to and including the first with content, usage or a finish (the commit point)."""
    chunks: list[Chunk] = []
    async for chunk in upstream:
        chunks.append(chunk)
        if chunk.has_content or chunk.usage is not None or _finished(chunk):
            break
    return chunks


async def _stop(task: asyncio.Future[Any]) -> None:
    task.cancel()
    await asyncio.wait((task,))
    if not task.cancelled():
        task.exception()  # retrieved: it ended on its own just before the cancel
