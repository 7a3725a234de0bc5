"""A pure ASGI middleware: request id in and out, per-request metrics, one access log line.

Pure ASGI (not Starlette's BaseHTTPMiddleware) so streams pass through untouched: it only wraps
`send` to add `X-Request-Id` to the response start and to watch the status and end of the body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from typing import Any

from polyroute.observability.access_line import access_log, log_access
from polyroute.observability.context import RequestContext, bind_request, unbind_request
from polyroute.observability.metrics import metrics, tally
from polyroute.observability.request_ids import accept_request_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
_REJECTIONS = {402: "payment_required", 429: "rate_limited"}
_UNMATCHED = "unmatched"


class ObservabilityMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        request_id = accept_request_id(_header(scope, b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        context = RequestContext(request_id)
        token = bind_request(context)
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500
        streaming = False
        m = metrics()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or ())
                headers.append(header)
                message["headers"] = headers
                streaming = _is_event_stream(headers)
                if streaming:
                    m.streams_in_flight.inc()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if streaming:
                m.streams_in_flight.dec()
            unbind_request(token)
            _record(scope, status, time.perf_counter() - started_s, context)


def _is_event_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:  # a loop, not any() over a generator: this runs for every response
        if key == b"content-type":
            return value.startswith(b"text/event-stream")
    return False


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


def route_label(scope: Scope) -> str:
    """The matched route's template (bounded cardinality), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return _UNMATCHED
    return str(scope.get("root_path") or "") + str(path)


def _record(scope: Scope, status: int, duration_s: float, context: RequestContext) -> None:
    m, t = metrics(), tally
    route = route_label(scope)
    t.count((m.http_requests, route, scope.get("method", ""), str(status)))
    t.observe((m.http_duration, route), duration_s)
    if route.endswith("/chat/completions"):
        if status in _REJECTIONS:
            t.count((m.rejections, _REJECTIONS[status]))
        if context.generation_ms is not None:
            t.observe((m.overhead,), max(0.0, duration_s - context.generation_ms / 1000))
    if access_log.isEnabledFor(logging.INFO):
        fields = _access_fields(scope, route, status, duration_s, context)
        log_access(scope.get("method", ""), route, status, duration_s * 1000, context.request_id, fields)


def _access_fields(scope: Scope, route: str, status: int, duration_s: float, context: RequestContext) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "method": scope.get("method", ""),
        "route": route,
        "status": status,
        "duration_ms": round(duration_s * 1000, 2),
    }
    if context.trace_id:
        fields["trace_id"] = context.trace_id
    if context.key_hash:
        fields["key_hash_prefix"] = context.key_hash[:12]
    if context.model is not None:
        fields.update(
            generation_id=context.generation_id,
            model=context.model,
            provider=context.provider,
            outcome=context.outcome,
            prompt_tokens=context.prompt_tokens,
            completion_tokens=context.completion_tokens,
            cost_pusd=context.cost_pusd,
            generation_ms=context.generation_ms,
            ttft_ms=context.ttft_ms,
        )
    return fields
