"""POST /chat/completions: thin handler over the relay, JSON or SSE."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from polyroute.domain.chat import Attribution, ChatRequest
from polyroute.domain.errors import BadRequest, Forbidden, GatewayError, PayloadTooLarge
from polyroute.domain.ids import new_generation_id
from polyroute.http import wire
from polyroute.http.chat_schema import parse_chat_request
from polyroute.http.responses import json_response
from polyroute.http.services import Services
from polyroute.http.sse import DONE, KEEPALIVE_COMMENT, SSEResponse
from polyroute.relay import CallInfo, ChunkEvent, Keepalive, StreamEnd, StreamEvent

_encode = msgspec.json.encode
_decode = msgspec.json.decode


async def read_json_body(request: Request, max_bytes: int) -> object:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"Request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > max_bytes:
            raise PayloadTooLarge(f"Request body is larger than {max_bytes} bytes")
        chunks.append(piece)
    raw = b"".join(chunks)
    if not raw:
        raise BadRequest("Invalid request: the body is empty; send a JSON object")
    try:
        return _decode(raw)
    except msgspec.DecodeError:
        raise BadRequest("Invalid JSON in request body") from None


def attribution_of(request: Request) -> Attribution:
    headers = request.headers
    title = headers.get("x-title") or headers.get("x-openrouter-title")
    return Attribution(referer=headers.get("http-referer") or headers.get("referer"), title=title)


async def chat_completions(request: Request) -> Response | SSEResponse:
    services: Services = request.app.state.services
    started_s = time.perf_counter()
    key = await services.authenticator.authenticate(request.headers.get("authorization"))
    if key.is_management:
        raise Forbidden("Management keys cannot call inference endpoints; use a regular API key")
    body = await read_json_body(request, services.settings.max_body_bytes)
    chat = parse_chat_request(body, attribution_of(request))
    call = CallInfo(generation_id=new_generation_id(), key=key, started_s=started_s)
    headers = {"X-Generation-Id": call.generation_id}
    try:
        return await _respond(services, call, chat, headers)
    except GatewayError as error:
        error.headers.update(headers)  # the failure's generation record and ledger entries carry this id
        raise


async def _respond(
    services: Services, call: CallInfo, chat: ChatRequest, headers: dict[str, str]
) -> Response | SSEResponse:
    created_s = int(time.time())
    if not chat.stream:
        result = await services.relay.complete(call, chat)
        return json_response(
            wire.completion_body(
                generation_id=call.generation_id,
                created_s=created_s,
                model_id=result.attempt.model.id,
                provider_name=result.attempt.provider.display_name,
                choices=result.completion.choices,
                system_fingerprint=result.completion.system_fingerprint,
                usage=result.usage,
                cost=result.cost,
            ),
            headers=headers,
        )
    events = services.relay.stream(call, chat)
    try:
        first = await anext(events)  # errors before the first event get a real HTTP status
    except BaseException:
        await events.aclose()
        raise
    return SSEResponse(_sse_bytes(first, events, call.generation_id, created_s, chat.model or ""), headers)


async def _sse_bytes(
    first: StreamEvent,
    events: AsyncGenerator[StreamEvent, None],
    generation_id: str,
    created_s: int,
    requested_model: str,
) -> AsyncGenerator[bytes, None]:
    event: StreamEvent | None = first
    model_id, provider_name = requested_model, ""
    try:
        while event is not None:
            if isinstance(event, Keepalive):
                yield KEEPALIVE_COMMENT
            elif isinstance(event, ChunkEvent):
                model_id, provider_name = event.attempt.model.id, event.attempt.provider.display_name
                body = wire.chunk_body(
                    generation_id=generation_id,
                    created_s=created_s,
                    model_id=model_id,
                    provider_name=provider_name,
                    choices=event.chunk.choices,
                    system_fingerprint=event.chunk.system_fingerprint,
                )
                yield b"data: " + _encode(body) + b"\n\n"
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
                yield b"data: " + _encode(final) + b"\n\n"
                yield DONE
                return
            event = await anext(events, None)
    except GatewayError as error:
        # Every attempt failed after keep-alives had already committed the 200 status.
        final = wire.chunk_body(
            generation_id=generation_id,
            created_s=created_s,
            model_id=model_id,
            provider_name=provider_name,
            choices=[wire.error_chunk_choice()],
        )
        final["error"] = wire.stream_error_fields(error)
        yield b"data: " + _encode(final) + b"\n\n"
        yield DONE
    finally:
        await events.aclose()
