"""The request's server span, as a pure ASGI middleware installed only when tracing is on.

It sits inside `ObservabilityMiddleware`, so the request id is known when the span starts and the
trace id is known when the access line is written. Streams end the span after their last byte.
"""

from __future__ import annotations

from typing import Any

from polyroute.observability import tracing
from polyroute.observability.context import current_request
from polyroute.observability.middleware import Message, Scope, route_label

# Probes and scrapes every few seconds: noise in a trace store, never worth a trace.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/healthz"})


class TracingMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        traces = tracing.active()
        request = current_request()
        if scope["type"] != "http" or traces is None or request is None or scope.get("path") in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        trace = traces.begin_request(scope, request.request_id)
        request.trace = trace
        request.trace_id = format(trace.server.get_span_context().trace_id, "032x")
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            traces.end_request(trace, str(scope.get("method", "")), route_label(scope), status)
