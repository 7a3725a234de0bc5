"""The span tree that `OtelTraces` builds for one request, recorded by the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from polyroute.domain.errors import PaymentRequired
from polyroute.observability.context import RequestContext, bind_request, unbind_request
from polyroute.observability.otel_traces import OtelTraces, RequestTrace

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
ROUTE = "/api/v1/chat/completions"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traces(exporter: InMemorySpanExporter) -> OtelTraces:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTraces(provider)


@pytest.fixture
def request_trace(traces: OtelTraces) -> Iterator[RequestTrace]:
    context = RequestContext("req-unit-1")
    token = bind_request(context)
    headers = [(b"traceparent", f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01".encode()), (b"authorization", b"Bearer sk-x")]
    context.trace = traces.begin_request({"method": "POST", "scheme": "http", "headers": headers}, "req-unit-1")
    yield context.trace
    unbind_request(token)


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    spans: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def row(status: str = "ok", **extra: object) -> dict[str, object]:
    return {"id": "gen-1", "model": "acme/m", "provider": "acme", "status": status, "key_hash": "ab" * 32, **extra}


def test_attempts_are_first_failover_then_retry_and_carry_the_previous_error(traces, request_trace, exporter):
    traces.attempt_started("acme-bad", "acme/m", "m-bad")
    traces.attempt_failed("http", 429)
    traces.attempt_started("acme", "acme/m", "m")
    traces.attempt_failed("timeout", None)
    traces.attempt_started("acme-bad", "acme/m", "m-bad")
    traces.first_token(0.0123)
    traces.generation_finished(row(prompt_tokens=3, completion_tokens=5, cost_pusd=7, finish_reason="length"))
    traces.end_request(request_trace, "POST", ROUTE, 200)

    attempts = sorted(by_name(exporter)["chat m-bad"] + by_name(exporter)["chat m"], key=lambda s: s.start_time or 0)
    assert [a.attributes["polyroute.attempt.reason"] for a in attempts] == ["first", "failover", "retry"]
    assert [a.attributes.get("polyroute.attempt.after_error") for a in attempts] == [None, "http_429", "timeout"]
    assert [a.status.status_code for a in attempts] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert attempts[0].attributes["http.response.status_code"] == 429
    served = attempts[2].attributes
    assert served["polyroute.ttft_ms"] == 12.3 and served["gen_ai.response.finish_reasons"] == ("length",)
    assert (served["gen_ai.usage.input_tokens"], served["gen_ai.usage.output_tokens"]) == (3, 5)
    assert all(a.kind is SpanKind.CLIENT for a in attempts)


def test_server_span_continues_the_caller_and_names_the_route(traces, request_trace, exporter):
    traces.generation_finished(row())
    traces.end_request(request_trace, "POST", ROUTE, 200)
    (server,) = by_name(exporter)[f"POST {ROUTE}"]
    assert server.kind is SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == CLIENT_SPAN
    assert server.attributes["polyroute.request_id"] == "req-unit-1"
    assert server.attributes["polyroute.key_hash_prefix"] == "ab" * 6
    assert "Bearer" not in repr(dict(server.attributes))  # headers never become attributes


def test_a_refusal_fails_its_child_span_with_the_class_only_and_a_4xx_leaves_the_server_span_unset(
    traces, request_trace, exporter
):
    with pytest.raises(PaymentRequired), traces.child("polyroute.reserve", None):
        raise PaymentRequired("Insufficient credits: the prompt was 'secret canary text'")
    traces.end_request(request_trace, "POST", ROUTE, 402)
    spans = by_name(exporter)
    (reserve,) = spans["polyroute.reserve"]
    assert reserve.status.status_code is StatusCode.ERROR and reserve.attributes["error.type"] == "PaymentRequired"
    assert "canary" not in repr(reserve.to_json())
    assert reserve.parent is not None and reserve.parent.span_id == request_trace.server.get_span_context().span_id
    (server,) = spans[f"POST {ROUTE}"]
    assert server.status.status_code is StatusCode.UNSET


def test_a_5xx_fails_the_server_span_and_an_abandoned_attempt_is_closed(traces, request_trace, exporter):
    traces.attempt_started("acme", "acme/m", "m")
    traces.end_request(request_trace, "POST", ROUTE, 502)
    spans = by_name(exporter)
    (attempt,) = spans["chat m"]
    assert attempt.attributes["polyroute.outcome"] == "abandoned"
    (server,) = spans[f"POST {ROUTE}"]
    assert server.status.status_code is StatusCode.ERROR and server.attributes["error.type"] == "502"


def test_a_failed_generation_marks_its_attempt_failed(traces, request_trace, exporter):
    traces.attempt_started("acme", "acme/m", "m")
    traces.generation_finished(row("error", error_code=502))
    traces.end_request(request_trace, "POST", ROUTE, 200)
    (attempt,) = by_name(exporter)["chat m"]
    assert attempt.status.status_code is StatusCode.ERROR and attempt.attributes["error.type"] == "http_502"


def test_hooks_outside_a_request_do_nothing(traces, exporter):
    traces.attempt_started("acme", "acme/m", "m")
    traces.attempt_failed("http", 500)
    traces.generation_finished(row())
    with traces.child("polyroute.auth", None) as span:
        assert span is None
    assert exporter.get_finished_spans() == ()
