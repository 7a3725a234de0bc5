"""The OpenTelemetry side of tracing: SDK setup, the request's span tree, `traceparent` in and out.

Imported only when `POLYROUTE_TRACING=otlp` (see `tracing`). One request gives:

    SERVER  POST /api/v1/chat/completions   (continues the client's `traceparent`)
      polyroute.auth, polyroute.limits, polyroute.reserve
      CLIENT  chat <upstream model>           one per upstream attempt; its context is the
      CLIENT  chat <upstream model>           `traceparent` the upstream receives
      polyroute.settle

Spans are never made "current" in OpenTelemetry's context: the relay's stream is an async generator
that different tasks drive, and a context attached in one task cannot be detached in another. Each
span names its parent explicitly (the request's server span, found through the request context),
and the attempt's span reaches the aiohttp hook through a context variable that the task making the
upstream call inherits.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from polyroute import __version__
from polyroute.observability.context import current_request

log = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()  # W3C traceparent/tracestate only: no baggage to providers
_INCOMING = (b"traceparent", b"tracestate")
_upstream_span: ContextVar[Span | None] = ContextVar("polyroute_upstream_span", default=None)


@dataclass(slots=True)
class RequestTrace:
    """One request's open spans and what its attempts have been so far."""

    server: Span
    context: Context  # the server span as a parent
    attempt: Span | None = None
    tried: list[tuple[str, str]] = field(default_factory=list)
    last_error: str | None = None


def _fail(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))


SHUTDOWN_FLUSH_S = 3.0  # well within uvicorn's 10 s graceful shutdown, even with the collector down


class OtelTraces:
    def __init__(self, provider: TracerProvider, exporter: SpanExporter | None = None) -> None:
        self._provider = provider
        self._exporter = exporter
        self._tracer: Tracer = provider.get_tracer("polyroute", __version__)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OtelTraces:
        """Exporter, sampler and batching come from the standard OTEL_* variables (read by the SDK)."""
        named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
        attributes = {"service.version": __version__}
        if not named:
            attributes["service.name"] = "polyroute"
        provider = TracerProvider(resource=Resource.create(attributes))
        exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        log.info("tracing on: OTLP/HTTP export")
        return cls(provider, exporter)

    def shutdown(self, timeout_s: float = SHUTDOWN_FLUSH_S) -> None:
        """Export what is queued, but give up after `timeout_s`: the exporter retries an unreachable
        collector for its whole timeout (10 s by default), which would outlast a graceful shutdown."""
        flush = threading.Thread(target=self._provider.shutdown, name="otel-shutdown", daemon=True)
        flush.start()
        flush.join(timeout_s)
        if flush.is_alive():
            log.warning("tracing: the last spans could not be exported within %.0f s; dropped", timeout_s)
            if self._exporter is not None:
                self._exporter.shutdown()  # stops its retries; the daemon thread ends with the process

    # --- the request (server span) ----------------------------------------------------------------
    def begin_request(self, scope: Mapping[str, Any], request_id: str) -> RequestTrace:
        carrier = {k.decode(): v.decode("latin-1") for k, v in scope.get("headers") or () if k in _INCOMING}
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        method = str(scope.get("method", ""))
        server = self._tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.scheme": str(scope.get("scheme", "http")),
                "network.protocol.version": str(scope.get("http_version", "")),
                "polyroute.request_id": request_id,
            },
        )
        return RequestTrace(server, set_span_in_context(server))

    def end_request(self, trace: RequestTrace, method: str, route: str, status: int) -> None:
        if trace.attempt is not None:  # the client left (or something broke) mid-attempt
            trace.attempt.set_attribute("polyroute.outcome", "abandoned")
            trace.attempt.end()
            trace.attempt = None
        server = trace.server
        server.update_name(f"{method} {route}")
        server.set_attribute("http.route", route)
        server.set_attribute("http.response.status_code", status)
        if status >= 500:  # 4xx are the client's errors, not the server's (HTTP semantic conventions)
            _fail(server, str(status))
        server.end()

    # --- child spans -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def child(self, name: str, attributes: Mapping[str, Any] | None) -> Iterator[Span | None]:
        request = current_request()
        trace: RequestTrace | None = request.trace if request is not None else None
        if trace is None:
            yield None
            return
        span = self._tracer.start_span(name, context=trace.context, attributes=attributes)
        try:
            yield span
        except BaseException as exc:
            _fail(span, type(exc).__name__)  # the type only: an error's text may quote the request
            raise
        finally:
            span.end()

    def _trace(self) -> RequestTrace | None:
        request = current_request()
        return request.trace if request is not None else None

    def attempt_started(self, provider: str, model: str, upstream_model: str) -> None:
        trace = self._trace()
        if trace is None:
            return
        if trace.attempt is not None:
            trace.attempt.end()
        key = (provider, model)
        reason = "retry" if key in trace.tried else "failover" if trace.tried else "first"
        trace.tried.append(key)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": upstream_model,
            "polyroute.model": model,
            "polyroute.provider": provider,
            "polyroute.attempt.number": len(trace.tried),
            "polyroute.attempt.reason": reason,
        }
        if trace.last_error is not None:
            attributes["polyroute.attempt.after_error"] = trace.last_error
        span = self._tracer.start_span(
            f"chat {upstream_model}", context=trace.context, kind=SpanKind.CLIENT, attributes=attributes
        )
        trace.attempt = span
        _upstream_span.set(span)  # inherited by the task that makes the upstream call

    def attempt_failed(self, kind: str, status: int | None) -> None:
        trace = self._trace()
        if trace is None or trace.attempt is None:
            return
        error_type = f"http_{status}" if kind == "http" and status else str(kind)
        if status is not None:
            trace.attempt.set_attribute("http.response.status_code", status)
        _fail(trace.attempt, error_type)
        trace.attempt.end()
        trace.attempt = None
        trace.last_error = error_type

    def first_token(self, attempt_ttft_s: float) -> None:
        trace = self._trace()
        if trace is not None and trace.attempt is not None:
            trace.attempt.set_attribute("polyroute.ttft_ms", round(attempt_ttft_s * 1000, 1))

    def generation_finished(self, row: Mapping[str, Any]) -> None:
        trace = self._trace()
        if trace is None:
            return
        outcome = str(row.get("status"))
        usage: dict[str, Any] = {"polyroute.outcome": outcome}
        for attribute, column in (
            ("gen_ai.usage.input_tokens", "prompt_tokens"),
            ("gen_ai.usage.output_tokens", "completion_tokens"),
            ("polyroute.cost_pusd", "cost_pusd"),
        ):
            if row.get(column) is not None:
                usage[attribute] = int(row[column])
        attempt = trace.attempt
        if attempt is not None:
            attempt.set_attributes(usage)
            if row.get("finish_reason"):
                attempt.set_attribute("gen_ai.response.finish_reasons", (str(row["finish_reason"]),))
            if outcome == "error":
                _fail(attempt, f"http_{row['error_code']}" if row.get("error_code") else "error")
            attempt.end()
            trace.attempt = None
        server = trace.server
        server.set_attributes(usage)
        server.set_attribute("polyroute.generation_id", str(row.get("id")))
        server.set_attribute("polyroute.model", str(row.get("model")))
        server.set_attribute("polyroute.provider", str(row.get("provider")))
        if row.get("key_hash"):
            server.set_attribute("polyroute.key_hash_prefix", str(row["key_hash"])[:12])

    # --- the upstream call -------------------------------------------------------------------------
    def aiohttp_trace_config(self) -> aiohttp.TraceConfig:
        async def on_request_start(
            session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
        ) -> None:
            span = _upstream_span.get()
            # Model calls are POSTs; image downloads (GET, any host) get no trace headers.
            if span is None or params.method != "POST":
                return
            _PROPAGATOR.inject(params.headers, context=set_span_in_context(span))
            span.set_attribute("server.address", params.url.host or "")
            if params.url.port is not None:
                span.set_attribute("server.port", params.url.port)

        config = aiohttp.TraceConfig()
        config.on_request_start.append(on_request_start)
        config.freeze()
        return config
