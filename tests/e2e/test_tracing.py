"""OpenTelemetry traces from the real gateway (POLYROUTE_TRACING=otlp) to a fake OTLP/HTTP collector.

A streamed request with a failover gives one server span continuing the client's `traceparent`, with
auth, limits, reserve, one span per upstream attempt and settle below it; each upstream received the
`traceparent` of its own attempt span; the access log line names the trace; and no prompt, completion,
API key or upstream key is in anything exported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from tests.e2e.conftest import E2E_TIMEOUTS
from tests.fakes.otlp_collector import ExportedSpan, FakeOtlpCollector
from tests.support.gateway import UPSTREAM_KEY_ENV, GatewayProcess, acme_config_toml, free_port

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT_ID = "00f067aa0ba902b7"
CANARY_PROMPT = "canary-prompt-0d9c-never-exported"
SERVICE_NAME = "polyroute-e2e-tracing"


@pytest.fixture(scope="module")
def collector() -> Iterator[FakeOtlpCollector]:
    with FakeOtlpCollector() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_collector(collector: FakeOtlpCollector) -> None:
    collector.clear()  # the SQLite and PostgreSQL gateways of this module export to the same collector


@pytest.fixture(scope="module")
def gateway_env(fake_upstream, collector) -> dict[str, str]:
    return {
        UPSTREAM_KEY_ENV: fake_upstream.api_key,
        **E2E_TIMEOUTS,
        "POLYROUTE_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_SERVICE_NAME": SERVICE_NAME,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export within 50 ms (default 5 s)
        "POLYROUTE_LOG_FORMAT": "json",
    }


def server_span_of(collector: FakeOtlpCollector, trace_id: str) -> ExportedSpan:
    """The trace's server span, once the exporter has sent it (it ends last)."""

    def has_server(spans: list[ExportedSpan]) -> bool:
        return any(s.trace_id == trace_id and s.kind == "SERVER" for s in spans)

    collector.wait_for(has_server)
    servers = [s for s in collector.trace(trace_id) if s.kind == "SERVER"]
    assert len(servers) == 1, collector.trace(trace_id)
    return servers[0]


def children_of(collector: FakeOtlpCollector, parent: ExportedSpan, count: int) -> list[ExportedSpan]:
    def complete(spans: list[ExportedSpan]) -> bool:
        return sum(1 for s in spans if s.parent_span_id == parent.span_id) >= count

    collector.wait_for(complete)
    children = [s for s in collector.trace(parent.trace_id) if s.parent_span_id == parent.span_id]
    return sorted(children, key=lambda s: s.start_ns)


def access_line(gateway: GatewayProcess, request_id: str) -> dict:
    for _ in range(50):
        for line in gateway.log_path.read_text().splitlines():
            if request_id in line and '"polyroute.access"' in line:
                return dict(json.loads(line))
        time.sleep(0.1)
    raise AssertionError(f"no access line for {request_id}:\n{gateway.log_tail()}")


def test_streamed_failover_gives_one_span_tree_continuing_the_callers_trace(gateway, api_key, fake_upstream, collector):
    request_id = "trace-e2e-failover-0001"
    body = {
        "model": "acme/failover",  # acme-bad answers 503, then acme serves
        "provider": {"sort": "price"},  # cheapest first: the failing endpoint, deterministically
        "messages": [{"role": "user", "content": CANARY_PROMPT}],
        "stream": True,
    }
    headers = {
        "Authorization": f"Bearer {api_key}",
        "X-Request-Id": request_id,
        "traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_PARENT_ID}-01",
    }
    with requests.post(
        f"{gateway.base_url}/chat/completions", json=body, headers=headers, stream=True, timeout=30
    ) as response:
        assert response.status_code == 200
        streamed = response.content
    assert CANARY_PROMPT.encode() in streamed and b"[DONE]" in streamed  # the echo reached the client

    server = server_span_of(collector, CLIENT_TRACE_ID)
    assert server.parent_span_id == CLIENT_PARENT_ID  # the caller's trace is continued
    assert server.name == "POST /api/v1/chat/completions"
    assert server.resource["service.name"] == SERVICE_NAME
    assert server.attributes["polyroute.request_id"] == request_id
    assert server.attributes["http.route"] == "/api/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["polyroute.generation_id"] == response.headers["x-generation-id"]
    assert server.attributes["polyroute.provider"] == "acme"
    assert server.attributes["gen_ai.usage.output_tokens"] > 0
    assert server.status != "ERROR"

    children = children_of(collector, server, 6)
    names = [s.name for s in children]
    assert names == [
        "polyroute.auth",
        "polyroute.limits",
        "polyroute.reserve",
        "chat error-503",
        "chat mock-model",
        "polyroute.settle",
    ], names
    assert all(server.start_ns <= s.start_ns <= s.end_ns <= server.end_ns for s in children)

    failed, served = children[3], children[4]
    assert failed.kind == served.kind == "CLIENT"
    assert failed.status == "ERROR" and failed.attributes["error.type"] == "http_503"
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["gen_ai.system"] == "acme-bad"
    assert failed.attributes["gen_ai.request.model"] == "error-503"
    assert failed.attributes["polyroute.attempt.reason"] == "first"
    assert failed.end_ns <= served.start_ns

    attrs = served.attributes
    assert served.status != "ERROR"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.system"] == "acme" and attrs["gen_ai.request.model"] == "mock-model"
    assert attrs["polyroute.model"] == "acme/failover"
    assert attrs["polyroute.attempt.number"] == 2
    assert attrs["polyroute.attempt.reason"] == "failover"
    assert attrs["polyroute.attempt.after_error"] == "http_503"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["polyroute.ttft_ms"] >= 0
    assert attrs["server.address"] == "127.0.0.1"
    assert children[5].attributes["polyroute.outcome"] == "ok"

    # Each upstream call carried the traceparent of its own attempt span.
    upstream_calls = fake_upstream.chat_requests()
    assert [r.body["model"] for r in upstream_calls] == ["error-503", "mock-model"]
    for call, attempt in zip(upstream_calls, (failed, served), strict=True):
        assert call.headers["traceparent"] == f"00-{CLIENT_TRACE_ID}-{attempt.span_id}-01"

    # The trace is findable from the request id: the access line names it.
    assert access_line(gateway, request_id)["trace_id"] == CLIENT_TRACE_ID


def test_nothing_exported_carries_prompt_completion_or_keys(gateway, api_key, fake_upstream, collector):
    headers = {"Authorization": f"Bearer {api_key}"}
    messages = [{"role": "user", "content": CANARY_PROMPT}]
    for model, stream in (("acme/mock-model", False), ("acme/mock-model", True), ("acme/failover", True)):
        body = {"model": model, "messages": messages, "stream": stream, "provider": {"sort": "price"}}
        response = requests.post(f"{gateway.base_url}/chat/completions", json=body, headers=headers, timeout=30)
        assert response.status_code == 200 and CANARY_PROMPT in response.text
    bad = requests.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "acme/mock-model", "messages": messages},
        headers={"Authorization": "Bearer sk-or-v1-canary-unknown-key-7777777777777777"},
        timeout=30,
    )
    assert bad.status_code == 401
    collector.wait_for(lambda spans: sum(1 for s in spans if s.kind == "SERVER") >= 4)
    exported = b"".join(collector.exports)
    assert exported, "nothing was exported"
    assert all(t == "application/x-protobuf" for t in collector.content_types)
    for canary in (CANARY_PROMPT, "Echo:", api_key, fake_upstream.api_key, "canary-unknown-key", "Bearer"):
        assert canary.encode() not in exported, canary
    decoded = json.dumps([s.attributes for s in collector.spans] + [s.status_message for s in collector.spans])
    assert CANARY_PROMPT not in decoded and api_key not in decoded


def test_a_request_without_traceparent_starts_a_trace_that_the_upstream_receives(
    gateway, api_key, fake_upstream, collector
):
    request_id = "trace-e2e-fresh-0002"
    response = requests.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "acme/mock-model", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {api_key}", "X-Request-Id": request_id},
        timeout=30,
    )
    assert response.status_code == 200
    trace_id = access_line(gateway, request_id)["trace_id"]
    assert len(trace_id) == 32 and trace_id != CLIENT_TRACE_ID
    server = server_span_of(collector, trace_id)
    assert server.parent_span_id == "" and server.attributes["polyroute.request_id"] == request_id
    attempt = next(s for s in children_of(collector, server, 5) if s.kind == "CLIENT")
    (call,) = fake_upstream.chat_requests()
    version, upstream_trace, parent, flags = call.headers["traceparent"].split("-")
    assert (version, upstream_trace, parent) == ("00", trace_id, attempt.span_id)
    assert int(flags, 16) & 1  # sampled (a trace id made here may also carry W3C's "random" flag, 02)


def test_a_refused_key_marks_the_auth_span_failed_but_not_the_server_span(gateway, collector):
    request_id = "trace-e2e-badkey-0003"
    response = requests.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "acme/mock-model", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer sk-or-v1-not-a-real-key-000000000000", "X-Request-Id": request_id},
        timeout=30,
    )
    assert response.status_code == 401
    server = server_span_of(collector, access_line(gateway, request_id)["trace_id"])
    assert server.attributes["http.response.status_code"] == 401 and server.status != "ERROR"  # the client's fault
    (auth,) = children_of(collector, server, 1)
    assert auth.name == "polyroute.auth" and auth.status == "ERROR"
    assert auth.attributes["error.type"] == "Unauthorized"


def test_two_workers_export_every_trace_and_flush_at_shutdown(fake_upstream, collector, tmp_path):
    env = {
        UPSTREAM_KEY_ENV: fake_upstream.api_key,
        **E2E_TIMEOUTS,
        "POLYROUTE_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nothing leaves before shutdown: only the flush at exit sends it
    }
    process = GatewayProcess(tmp_path / "two-workers", acme_config_toml(fake_upstream.base_url), env)
    process.extra_args = ["--workers", "2"]
    sent = 12
    with process:
        key = process.create_key(name="tracing")["key"]

        def chat(i: int) -> str:
            request_id = f"trace-e2e-workers-{i:04d}"
            body = {"model": "acme/mock-model", "messages": [{"role": "user", "content": "hi"}], "stream": bool(i % 2)}
            headers = {"Authorization": f"Bearer {key}", "X-Request-Id": request_id}
            response = requests.post(f"{process.base_url}/chat/completions", json=body, headers=headers, timeout=30)
            assert response.status_code == 200
            return request_id

        with ThreadPoolExecutor(4) as pool:  # concurrent connections, so both workers serve some
            request_ids = set(pool.map(chat, range(sent)))
        assert not [s for s in collector.spans if s.kind == "SERVER"], "exported before shutdown"
    assert process.returncode == 0
    spans = collector.wait_for(lambda spans: sum(1 for s in spans if s.kind == "SERVER") >= sent)
    servers = [s for s in spans if s.kind == "SERVER"]
    assert {s.attributes["polyroute.request_id"] for s in servers} == request_ids
    assert len({s.trace_id for s in servers}) == sent
    assert sum(1 for s in spans if s.kind == "CLIENT") == sent


def test_an_unreachable_collector_neither_fails_requests_nor_holds_up_shutdown(fake_upstream, tmp_path):
    env = {
        UPSTREAM_KEY_ENV: fake_upstream.api_key,
        **E2E_TIMEOUTS,
        "POLYROUTE_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    process = GatewayProcess(tmp_path / "no-collector", acme_config_toml(fake_upstream.base_url), env).start()
    try:
        key = process.create_key(name="tracing")["key"]
        for stream in (False, True) * 5:
            body = {"model": "acme/mock-model", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            response = requests.post(
                f"{process.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=5
            )
            assert response.status_code == 200
        time.sleep(0.5)  # the exporter is retrying a batch now
        started = time.monotonic()
        process.stop(timeout_s=10)
        stopped_s = time.monotonic() - started
    finally:
        process.kill()
    # The exporter alone would retry for 10 s; the flush at shutdown gives up after 3.
    assert stopped_s < 6, (stopped_s, process.log_tail())
    assert "could not be exported" in process.log_path.read_text()
