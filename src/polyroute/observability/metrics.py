"""Prometheus metrics: defined once per process, multi-worker correct through multiprocess mode.

`polyroute serve --workers N` points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before the
workers start; each worker then writes its samples to files there and whichever worker answers
`/metrics` adds them all up. prometheus_client chooses its storage when it is first imported, so
this module imports it lazily, on the first `metrics()` call inside a worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from polyroute.domain.money import PUSD_PER_USD
from polyroute.observability.context import current_request
from polyroute.observability.tally import Tally
from polyroute.observability.tracing import generation_finished

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(slots=True)
class Metrics:
    registry: Any
    multiprocess: bool
    http_requests: Any
    http_duration: Any
    overhead: Any
    chat_requests: Any
    upstream_latency: Any
    ttft: Any
    tokens: Any
    cost: Any
    rejections: Any
    streams_in_flight: Any


_metrics: Metrics | None = None
tally = Tally()  # every per-request update goes through it (tally.py)


def multiprocess_dir() -> str | None:
    """prometheus_client reads this variable itself; we follow the same one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def metrics() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = _build()
        tally.per_pass = _metrics.multiprocess  # other workers read this one's values (tally.py)
    return _metrics


def _build() -> Metrics:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry(auto_describe=False)
    return Metrics(
        registry=registry,
        multiprocess=multiprocess_dir() is not None,
        http_requests=Counter(
            "polyroute_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=registry,
        ),
        http_duration=Histogram(
            "polyroute_http_request_duration_seconds",
            "Whole HTTP request time",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        overhead=Histogram(
            "polyroute_gateway_overhead_seconds",
            "Chat request time spent outside the generation (auth, parsing, encoding)",
            buckets=OVERHEAD_BUCKETS_S,
            registry=registry,
        ),
        chat_requests=Counter(
            "polyroute_chat_requests",
            "Generations by model, provider and outcome",
            ["model", "provider", "outcome"],
            registry=registry,
        ),
        upstream_latency=Histogram(
            "polyroute_generation_latency_seconds",
            "Generation time from acceptance to its end (upstream-bound)",
            ["provider"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        ttft=Histogram(
            "polyroute_time_to_first_token_seconds",
            "Time to the first content token (streams)",
            ["provider"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        tokens=Counter(
            "polyroute_tokens",
            "Tokens by model, provider and direction",
            ["model", "provider", "direction"],
            registry=registry,
        ),
        cost=Counter("polyroute_cost_usd", "Charged cost in USD", ["model", "provider"], registry=registry),
        rejections=Counter(
            "polyroute_rejections", "Chat requests refused before any upstream call", ["reason"], registry=registry
        ),
        streams_in_flight=Gauge(
            "polyroute_streams_in_flight",
            "SSE responses being sent now",
            multiprocess_mode="livesum",
            registry=registry,
        ),
    )


def observe_generation(row: dict[str, Any]) -> None:
    """The relay calls this once per generation, with the record it writes (never the prompt)."""
    m, t = metrics(), tally
    model, provider, outcome = str(row["model"]), str(row["provider"]), str(row["status"])
    t.count((m.chat_requests, model, provider, outcome))
    prompt, completion = int(row.get("prompt_tokens") or 0), int(row.get("completion_tokens") or 0)
    if prompt:
        t.count((m.tokens, model, provider, "prompt"), prompt)
    if completion:
        t.count((m.tokens, model, provider, "completion"), completion)
    cost_pusd = int(row.get("cost_pusd") or 0)
    if cost_pusd:
        t.count((m.cost, model, provider), cost_pusd / PUSD_PER_USD)
    latency_ms, ttft_ms = row.get("latency_ms"), row.get("ttft_ms")
    if latency_ms is not None:
        t.observe((m.upstream_latency, provider), latency_ms / 1000)
    if ttft_ms is not None:
        t.observe((m.ttft, provider), ttft_ms / 1000)
    context = current_request()
    if context is not None:
        context.generation_id = row.get("id")
        context.key_hash = row.get("key_hash")
        context.model, context.provider, context.outcome = model, provider, outcome
        context.prompt_tokens, context.completion_tokens, context.cost_pusd = prompt, completion, cost_pusd
        context.generation_ms, context.ttft_ms = latency_ms, ttft_ms
    generation_finished(row)  # the attempt and request spans, when tracing is on


def render(scrape_time: Iterable[Any] = ()) -> bytes:
    """The exposition text: every worker's samples, then collectors evaluated now in this worker."""
    from prometheus_client import CollectorRegistry, generate_latest

    tally.flush()  # this process's updates of the current loop pass
    m = metrics()
    if m.multiprocess:
        from prometheus_client import multiprocess

        base = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(base)  # type: ignore[no-untyped-call]
    else:
        base = m.registry
    extra = CollectorRegistry(auto_describe=False)
    for collector in scrape_time:
        extra.register(collector)
    return bytes(generate_latest(base) + generate_latest(extra))
