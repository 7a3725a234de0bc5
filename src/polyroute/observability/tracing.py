"""OpenTelemetry traces: optional, off by default, and free when off.

`POLYROUTE_TRACING=otlp` turns them on (with the `otel` extra installed); the exporter then reads
the standard `OTEL_*` variables (endpoint, headers, sampler, batch sizes). Everything here is a
no-op while tracing is off: this module never imports OpenTelemetry itself, `span()` hands back one
shared do-nothing context manager, and the other hooks return after one global check. The SDK is
imported (from `otel_traces`) only by `start_tracing` when the switch is on.

Spans carry ids, routes, model and provider names, token counts, statuses and timings; never a
prompt, a completion, a key or a header value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from polyroute.settings import Settings

if TYPE_CHECKING:  # the import itself would load the SDK
    from polyroute.observability.otel_traces import OtelTraces

_NOOP: AbstractContextManager[None] = contextlib.nullcontext()
_active: OtelTraces | None = None


def active() -> OtelTraces | None:
    return _active


def start_tracing(settings: Settings) -> None:
    """Build the tracer provider and exporter once per process (each worker has its own)."""
    global _active
    if settings.tracing == "off" or _active is not None:
        return
    try:
        from polyroute.observability.otel_traces import OtelTraces
    except ImportError as exc:
        raise SystemExit(
            f'POLYROUTE_TRACING={settings.tracing} needs the otel extra: pip install "polyroute[otel]" ({exc})'
        ) from None
    _active = OtelTraces.from_env(settings.env)


def stop_tracing() -> None:
    """Export what is still queued and stop the exporter (blocking: call it off the event loop)."""
    global _active
    traces, _active = _active, None
    if traces is not None:
        traces.shutdown()


def span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Any]:
    """A child span of the current request, ended when the block ends (an error marks it failed)."""
    if _active is None:
        return _NOOP
    return _active.child(name, attributes)


def attempt_started(provider: str, model: str, upstream_model: str) -> None:
    """An upstream attempt begins: its span, whose context goes out in the upstream's `traceparent`."""
    if _active is not None:
        _active.attempt_started(provider, model, upstream_model)


def attempt_failed(kind: str, status: int | None) -> None:
    """The current attempt failed before content; what follows (failover, retry, error) is the relay's."""
    if _active is not None:
        _active.attempt_failed(kind, status)


def first_token(attempt_ttft_s: float) -> None:
    if _active is not None:
        _active.first_token(attempt_ttft_s)


def generation_finished(row: Mapping[str, Any]) -> None:
    """The generation record (ids, counts, outcome; never text) completes the attempt and request spans."""
    if _active is not None:
        _active.generation_finished(row)


def upstream_trace_configs() -> list[Any]:
    """aiohttp TraceConfigs for the upstream session: they add `traceparent`; none while tracing is off."""
    if _active is None:
        return []
    return [_active.aiohttp_trace_config()]
