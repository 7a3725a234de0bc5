"""A fake OpenTelemetry collector: OTLP/HTTP `POST /v1/traces` on 127.0.0.1, decoded with opentelemetry-proto.

It keeps every export's raw bytes (to search them for text that must never be exported) and the
decoded spans as plain `ExportedSpan`s: ids in hex, attributes as Python values.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.fakes.loopback import LoopbackUpstream
from tests.support import leak_scan

KINDS = {v: k.removeprefix("SPAN_KIND_") for k, v in Span.SpanKind.items()}
STATUSES = {v: k.removeprefix("STATUS_CODE_") for k, v in Status.StatusCode.items()}


@dataclass(frozen=True, slots=True)
class ExportedSpan:
    name: str
    kind: str  # SERVER, CLIENT, INTERNAL, ...
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str  # "" for a root span
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status: str  # UNSET, OK, ERROR
    status_message: str
    resource: dict[str, Any]


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, which) if which else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


class FakeOtlpCollector(LoopbackUpstream):
    thread_name = "fake-otlp-collector"

    def __init__(self) -> None:
        super().__init__()
        self.exports: list[bytes] = []  # raw protobuf bodies, as received (after gzip)
        self.spans: list[ExportedSpan] = []
        self.content_types: list[str] = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """What `OTEL_EXPORTER_OTLP_ENDPOINT` should say (the exporter appends `/v1/traces`)."""
        return self.root_url

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/traces", self._traces)

    async def _traces(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        export = ExportTraceServiceRequest.FromString(raw)
        spans = []
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                spans += [self._span(span, resource) for span in scope_spans.spans]
        leak_scan.keep_for_scan("exported spans", raw)  # no secret nor prompt may be exported either
        with self._lock:
            self.exports.append(raw)
            self.content_types.append(request.headers.get("Content-Type", ""))
            self.spans += spans
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    @staticmethod
    def _span(span: Span, resource: dict[str, Any]) -> ExportedSpan:
        return ExportedSpan(
            name=span.name,
            kind=KINDS[span.kind],
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            start_ns=span.start_time_unix_nano,
            end_ns=span.end_time_unix_nano,
            attributes=_attributes(span.attributes),
            status=STATUSES[span.status.code],
            status_message=span.status.message,
            resource=resource,
        )

    def trace(self, trace_id: str) -> list[ExportedSpan]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def wait_for(self, done: Callable[[list[ExportedSpan]], bool], timeout_s: float = 10.0) -> list[ExportedSpan]:
        """All spans received once `done(spans)` holds (or when the time is up, for the assertion to say why)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                spans = list(self.spans)
            if done(spans):
                return spans
            time.sleep(0.05)
        with self._lock:
            return list(self.spans)

    def clear(self) -> None:
        with self._lock:
            self.exports.clear()
            self.spans.clear()
            self.content_types.clear()
