"""What OpenTelemetry tracing costs the gateway: bench/perf's quick run with tracing off, then on, alternating.

    .venv/bin/python bench/tracing_overhead.py [--pairs 2] [--seq 300] [--wrk-s 3] [--rounds 2]
    .venv/bin/python bench/tracing_overhead.py --micro     # CPU per request of the span tree alone

Each run is `bench/perf/run.py --quick --no-litellm --streams 0` (nginx mock upstream, wrk pinned to the
load core, the gateway on its own core; ADR 0003). "On" adds `POLYROUTE_TRACING=otlp` and points the
exporter at an OTLP/HTTP sink started here (on the load core), with the default sampler: every request
traced and exported, the worst case. Off and on runs alternate so drift on the shared machine hits both;
the table shows each figure's median over the runs of each kind and the difference. The sink decodes
what it received only after the runs, to report how many spans were exported.

`--micro` times, in this process, one chat request's span tree as the gateway builds it (server span,
auth, limits, reserve, one attempt, settle) through the OTLP protobuf encoding, with every request
sampled, with a 1-in-10 ratio sampler, and with everything sampled out: CPU cost that the end-to-end
figures blur on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "bench" / "perf" / "run.py"
# (label, path in the run's JSON, unit)
FIGURES = (
    ("sequential non-stream p50", ("sequential", "polyroute", "json_p50_ms"), "ms"),
    ("sequential non-stream p99", ("sequential", "polyroute", "json_p99_ms"), "ms"),
    ("sequential stream TTFT p50", ("sequential", "polyroute", "ttft_p50_ms"), "ms"),
    ("sequential stream p50", ("sequential", "polyroute", "sse_p50_ms"), "ms"),
    ("1 worker non-stream", ("throughput", "polyroute_1w", "json", "rps"), "req/s"),
    ("1 worker non-stream CPU", ("throughput", "polyroute_1w", "json", "cpu_ms_per_req"), "ms/req"),
    ("1 worker stream", ("throughput", "polyroute_1w", "sse", "rps"), "req/s"),
    ("1 worker stream CPU", ("throughput", "polyroute_1w", "sse", "cpu_ms_per_req"), "ms/req"),
    ("2 workers non-stream", ("throughput", "polyroute_2w", "json", "rps"), "req/s"),
)


class Sink:
    """An OTLP/HTTP endpoint that keeps the bodies and answers 200 at once."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()

    def start(self) -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        threading.Thread(target=self._run, args=(sock, ready), daemon=True).start()
        ready.wait(10)

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        # This thread only (pid 0): the sink shares the load core (bench/perf's last), never the gateway's.
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._export)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.SockSite(runner, sock).start())
        ready.set()
        self._loop.run_forever()

    async def _export(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    def spans(self) -> int:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        count = 0
        for body in self.bodies:
            export = ExportTraceServiceRequest.FromString(body)
            count += sum(len(s.spans) for r in export.resource_spans for s in r.scope_spans)
        return count


def run_once(args: argparse.Namespace, env: list[str], out: Path) -> dict[str, Any]:
    json_path = out.with_suffix(".json")
    command = [sys.executable, str(RUN), "--quick", "--no-litellm", "--streams", "0", "--out", str(out)]
    command += ["--json", str(json_path)]
    command += ["--seq", str(args.seq), "--wrk-s", str(args.wrk_s), "--rounds", str(args.rounds)]
    for pair in env:
        command += ["--gateway-env", pair]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return dict(json.loads(json_path.read_text()))


def figure(result: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = result
    for key in path:
        value = value[key]
    return float(value)


def micro(requests: int = 3000) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

    from polyroute.observability.context import RequestContext, bind_request, unbind_request
    from polyroute.observability.otel_traces import OtelTraces

    class Encoding(SpanExporter):  # what the OTLP exporter does on its thread, minus the HTTP POST
        def __init__(self, encode: bool) -> None:
            self.encode = encode

        def export(self, spans: Any) -> SpanExportResult:
            if self.encode:
                encode_spans(list(spans)).SerializeToString()
            return SpanExportResult.SUCCESS

    scope = {"method": "POST", "scheme": "http", "http_version": "1.1", "headers": []}
    row = {"status": "ok", "prompt_tokens": 10, "completion_tokens": 20, "cost_pusd": 1000, "finish_reason": "stop"}
    row |= {"id": "gen-1", "model": "acme/m", "provider": "acme", "key_hash": "ab" * 32}

    def per_request_us(sampler: Sampler, encode: bool) -> float:
        provider = TracerProvider(sampler=sampler)
        provider.add_span_processor(SimpleSpanProcessor(Encoding(encode)))
        traces = OtelTraces(provider)
        started = time.perf_counter()
        for _ in range(requests):
            context = RequestContext("req-bench")
            token = bind_request(context)
            context.trace = trace = traces.begin_request(scope, "req-bench")
            for name in ("polyroute.auth", "polyroute.limits", "polyroute.reserve"):
                with traces.child(name, None):
                    pass
            traces.attempt_started("acme", "acme/m", "m")
            traces.first_token(0.01)
            traces.generation_finished(row)
            with traces.child("polyroute.settle", {"polyroute.outcome": "ok"}):
                pass
            traces.end_request(trace, "POST", "/api/v1/chat/completions", 200)
            unbind_request(token)
        return (time.perf_counter() - started) / requests * 1e6

    print("| sampler | spans (request path) | + OTLP encoding (exporter thread) | total CPU per request |")
    print("|---|---:|---:|---:|")
    for label, sampler in (
        ("every request (default)", ParentBased(ALWAYS_ON)),
        ("1 in 10 (parentbased_traceidratio 0.1)", ParentBased(TraceIdRatioBased(0.1))),
        ("none (always_off)", ALWAYS_OFF),
    ):
        per_request_us(sampler, True)  # warm-up
        spans = min(per_request_us(sampler, False) for _ in range(3))
        total = min(per_request_us(sampler, True) for _ in range(3))
        print(f"| {label} | {spans:.0f} µs | {total - spans:.0f} µs | {total:.0f} µs |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2, help="off/on run pairs")
    parser.add_argument("--seq", type=int, default=300, help="sequential requests per kind")
    parser.add_argument("--wrk-s", type=int, default=3, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=2, help="wrk rounds per run")
    parser.add_argument("--micro", action="store_true", help="only the in-process span tree cost")
    args = parser.parse_args()
    if args.micro:
        micro()
        return 0
    sink = Sink()
    sink.start()
    tracing_env = [
        "POLYROUTE_TRACING=otlp",
        f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{sink.port}",
        "OTEL_SERVICE_NAME=polyroute-bench",
    ]
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="polyroute-tracing-bench.") as tmp:
        for pair in range(args.pairs):
            for kind in ("off", "on") if pair % 2 == 0 else ("on", "off"):
                print(f"pair {pair + 1}/{args.pairs}: tracing {kind}", file=sys.stderr, flush=True)
                out = Path(tmp) / f"{kind}-{pair}.md"
                runs[kind].append(run_once(args, tracing_env if kind == "on" else [], out))
    load = runs["on"][-1]["meta"].get("load_end", "?")
    print(f"Tracing overhead: {args.pairs} off/on pairs of bench/perf quick runs (medians); load at end {load}")
    print(f"Spans exported by the 'on' runs: {sink.spans():,} in {len(sink.bodies):,} OTLP requests\n")
    print("| figure | tracing off | tracing on | on - off |")
    print("|---|---:|---:|---:|")
    for label, path, unit in FIGURES:
        off = statistics.median(figure(r, path) for r in runs["off"])
        on = statistics.median(figure(r, path) for r in runs["on"])
        change = f"{on - off:+.3f} {unit}" + (f" ({(on - off) / off:+.1%})" if off else "")
        print(f"| {label} | {off:.3f} {unit} | {on:.3f} {unit} | {change} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
