"""POST /chat/completions: thin handler over the relay, JSON or SSE."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from polyroute.accounts.types import ApiKey
from polyroute.billing.pricing import NO_CHARGE
from polyroute.billing.token_estimate import estimate_prompt_tokens
from polyroute.catalog.catalog import Catalog
from polyroute.domain.chat import Attribution, ChatRequest, Usage
from polyroute.domain.errors import BadRequest, Forbidden, GatewayError, InternalError, PayloadTooLarge
from polyroute.domain.ids import new_generation_id
from polyroute.http import wire
from polyroute.http.chat_schema import parse_chat_request
from polyroute.http.responses import EncodedJSONResponse
from polyroute.http.services import Services
from polyroute.http.sse import DONE, FLUSH, KEEPALIVE_COMMENT, SSEResponse
from polyroute.limits.concurrency import ConcurrencyGate, Overloaded
from polyroute.limits.limiter import Subject
from polyroute.observability.tracing import span
from polyroute.relay import CallInfo, ChunkEvent, Keepalive, StreamEnd, StreamEvent

log = logging.getLogger(__name__)
_encode = msgspec.json.encode
_decode = msgspec.json.decode


async def read_json_body(request: Request, max_bytes: int) -> object:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"Request body is larger than {max_bytes} bytes")
    # ASGI messages read straight from `receive`, as `Request.stream()` reads them: that async
    # generator cost each request a WeakSet entry in the loop's registry of async generators (issue #9).
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client left mid-body
            raise ClientDisconnect()
        piece = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(piece)
        if size > max_bytes:
            raise PayloadTooLarge(f"Request body is larger than {max_bytes} bytes")
        chunks.append(piece)
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not raw:
        raise BadRequest("Invalid request: the body is empty; send a JSON object")
    try:
        return _decode(raw)
    except msgspec.DecodeError:
        raise BadRequest("Invalid JSON in request body") from None


_ATTRIBUTION_HEADERS = frozenset((b"x-title", b"x-openrouter-title", b"http-referer", b"referer"))


def attribution_of(request: Request) -> Attribution:
    # One pass over the raw (lower-cased) headers, first value of each name, as `request.headers.get`
    # gives: most requests carry none of these, and each missing name cost Starlette's Headers a
    # scan plus a raised and caught KeyError (4 per chat request, issue #9).
    found: dict[bytes, str] = {}
    for name, value in request.scope["headers"]:
        if name in _ATTRIBUTION_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    title = found.get(b"x-title") or found.get(b"x-openrouter-title")
    return Attribution(referer=found.get(b"http-referer") or found.get(b"referer"), title=title)


class _LeavesGate:
    """The handler's response, leaving the concurrency gate once it is fully sent (streams included)."""

    def __init__(self, response: EncodedJSONResponse | SSEResponse, gate: ConcurrencyGate) -> None:
        self._response = response
        self._gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._response(scope, receive, send)
        finally:
            self._gate.leave()


async def chat_completions(request: Request) -> EncodedJSONResponse | SSEResponse | _LeavesGate:
    services: Services = request.app.state.services
    if not services.gate.try_enter():
        raise Overloaded()  # shed at once: no queue, no database or upstream work
    try:
        response = await _chat_completions(request, services)
    except BaseException:
        services.gate.leave()
        raise
    return _LeavesGate(response, services.gate)


def is_free_request(catalog: Catalog, chat: ChatRequest) -> bool:
    """Whether the request's model (the first of `models` when `model` is absent) is a `:free` variant."""
    slug = chat.model or (chat.models[0] if chat.models else None)
    if not slug:
        return False
    try:
        model, variant = catalog.resolve(slug)
    except GatewayError:
        return False  # the relay answers the unknown model
    return variant == "free" or model.id.endswith(":free")


async def admit(services: Services, key: ApiKey, chat: ChatRequest) -> Subject | None:
    """Operator limits and, for `:free` models, the free tier: one atomic decision, or 429.

    Returns the subject when tokens-per-minute limits were charged by estimate (to correct later).
    """
    limiter = services.limiter
    counts_tokens = limiter.has_token_limits(key.tpm)
    tokens = estimate_prompt_tokens(chat.messages) + (chat.max_tokens or 0) if counts_tokens else 0
    subject = Subject(key.hash, key.account_id, tokens, key_rpm=key.rpm, key_tpm=key.tpm)
    rules = limiter.operator_rules(subject)
    has_credits = True
    if is_free_request(services.catalog, chat):
        bought_pusd = await services.ledger.credits_bought_pusd(key.account_id)
        has_credits = limiter.has_free_credits(bought_pusd)
        rules += limiter.free_rules(key.account_id, bought_pusd)
    await limiter.admit(rules, free_has_credits=has_credits)
    return subject if counts_tokens else None


async def _chat_completions(request: Request, services: Services) -> EncodedJSONResponse | SSEResponse:
    started_s = time.perf_counter()
    with span("polyroute.auth"):
        key = await services.authenticator.authenticate(request.headers.get("authorization"))
    if key.is_management:
        raise Forbidden("Management keys cannot call inference endpoints; use a regular API key")
    body = await read_json_body(request, services.settings.max_body_bytes)
    chat = parse_chat_request(body, attribution_of(request))
    # The account's default `provider` object (Settings page) under the request's own, field by field.
    chat.provider = await services.provider_defaults.apply(key.account_id, chat.provider)
    with span("polyroute.limits"):
        subject = await admit(services, key, chat)
    correct = None if subject is None else _corrector(services, subject)
    call = CallInfo(generation_id=new_generation_id(), key=key, started_s=started_s)
    headers = {"X-Generation-Id": call.generation_id}
    try:
        return await _respond(services, call, chat, headers, correct)
    except GatewayError as error:
        error.headers.update(headers)  # the failure's generation record and ledger entries carry this id
        if correct is not None:
            await correct(0)  # nothing was generated (nor billed): the estimate goes back
        raise


TokenCorrection = Callable[[int], Awaitable[None]]


def _corrector(services: Services, subject: Subject) -> TokenCorrection:
    async def correct(actual_tokens: int) -> None:
        await services.limiter.correct(subject, actual_tokens)

    return correct


async def _respond(
    services: Services,
    call: CallInfo,
    chat: ChatRequest,
    headers: dict[str, str],
    correct: TokenCorrection | None = None,
) -> EncodedJSONResponse | SSEResponse:
    created_s = int(time.time())
    if not chat.stream:
        result = await services.relay.complete(call, chat)
        if correct is not None:
            await correct(result.usage.total_tokens)  # before the reply: the client's next call sees it
        return EncodedJSONResponse(
            _encode(
                wire.completion_body(
                    generation_id=call.generation_id,
                    created_s=created_s,
                    model_id=result.attempt.model.id,
                    provider_name=result.attempt.provider.display_name,
                    choices=result.completion.choices,
                    system_fingerprint=result.completion.system_fingerprint,
                    usage=result.usage,
                    cost=result.cost,
                )
            ),
            headers=headers,
        )
    events = services.relay.stream(call, chat)
    try:
        first = await anext(events)  # errors before the first event get a real HTTP status
    except BaseException:
        await events.aclose()
        raise
    body = _sse_bytes(first, events, call.generation_id, created_s, chat.model or "", correct)
    return SSEResponse(body, headers)


async def _sse_bytes(
    first: StreamEvent,
    events: AsyncGenerator[StreamEvent, None],
    generation_id: str,
    created_s: int,
    requested_model: str,
    correct: TokenCorrection | None = None,
) -> AsyncGenerator[bytes, None]:
    """The SSE body; a stream that ends without its StreamEnd (client gone) keeps the tpm estimate."""
    event: StreamEvent | None = first
    model_id, provider_name = requested_model, ""
    first_token_sent = False
    chunks = wire.ChunkEvents(generation_id, created_s)
    try:
        while event is not None:
            if isinstance(event, Keepalive):
                yield KEEPALIVE_COMMENT
            elif isinstance(event, ChunkEvent):
                model_id, provider_name = event.attempt.model.id, event.attempt.provider.display_name
                yield chunks.event(
                    model_id=model_id,
                    provider_name=provider_name,
                    choices=event.chunk.choices,
                    system_fingerprint=event.chunk.system_fingerprint,
                )
                if not first_token_sent and event.chunk.has_content:
                    first_token_sent = True
                    yield FLUSH  # the first token goes out now, not with the chunks ready after it
            elif isinstance(event, StreamEnd):
                model_id, provider_name = event.attempt.model.id, event.attempt.provider.display_name
                final = wire.chunk_body(
                    generation_id=generation_id,
                    created_s=created_s,
                    model_id=model_id,
                    provider_name=provider_name,
                    choices=[wire.error_chunk_choice()] if event.error else [],
                )
                final["usage"] = wire.usage_body(event.usage, event.cost)
                if event.error is not None:
                    final["error"] = wire.stream_error_fields(event.error)
                if correct is not None:
                    await correct(event.usage.total_tokens)
                yield b"data: " + _encode(final) + b"\n\n"
                yield DONE
                return
            event = await anext(events, None)
    except Exception as exc:
        # Every attempt failed after keep-alives had already committed the 200 status (the failure took
        # longer than the keep-alive interval to show): the client still gets the error, as the same
        # final chunk a mid-stream failure gets (finish_reason "error", usage with cost 0: nothing was
        # charged), then [DONE]. Never a silently truncated 200.
        if isinstance(exc, GatewayError):
            error: GatewayError = exc
        else:
            log.error("unexpected error in a committed stream", exc_info=exc)
            error = InternalError("Internal Server Error")
        final = wire.chunk_body(
            generation_id=generation_id,
            created_s=created_s,
            model_id=model_id,
            provider_name=provider_name or str(error.metadata.get("provider_name") or ""),
            choices=[wire.error_chunk_choice()],
        )
        final["usage"] = wire.usage_body(Usage(), NO_CHARGE)
        final["error"] = wire.stream_error_fields(error)
        yield b"data: " + _encode(final) + b"\n\n"
        yield DONE
    finally:
        await events.aclose()
