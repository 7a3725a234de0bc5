"""The gateway as `polyroute serve` runs it (uvicorn, uvloop, httptools, one worker), with step timers.

    python bench/perf/hotpath_server.py PORT OUT_PREFIX [--cprofile]

Run by `profile.py`, never by hand: the environment (database, config) comes from the harness.
Each step of a chat request is wrapped with a wall-clock timer (perf_counter_ns): key auth, body
read and parse, admission (limits), ledger reserve (`Ledger.authorize`), the upstream call, ledger
settle (`Ledger.finish`, record included), the metrics/log observation, and the whole ASGI request.
The write batcher's transactions are timed too (with how many units each held). On SIGINT/SIGTERM
the server stops, and the per-step percentiles go to OUT_PREFIX.steps.json; with --cprofile the
profile goes to OUT_PREFIX.pstats. The wrappers are this tool's only change to the gateway.
"""

from __future__ import annotations

import cProfile
import json
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import uvicorn

from polyroute import relay as relay_module
from polyroute.accounts.authenticator import KeyAuthenticator
from polyroute.billing.ledger import Ledger
from polyroute.db import write_batcher
from polyroute.http import routes_chat
from polyroute.http.app import create_app
from polyroute.logging_setup import configure_logging
from polyroute.providers.openai_compat.provider import OpenAICompatProvider
from polyroute.settings import load_settings

TIMES: defaultdict[str, list[int]] = defaultdict(list)
BATCH_SIZES: list[int] = []


def _timed_async(owner: Any, name: str, label: str) -> None:
    original = getattr(owner, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return await original(*args, **kwargs)
        finally:
            TIMES[label].append(time.perf_counter_ns() - started)

    setattr(owner, name, wrapper)


def _timed_sync(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label].append(time.perf_counter_ns() - started)

    setattr(owner, name, wrapper)


def _timed_stream(owner: Any, name: str, label: str) -> None:
    """An async generator method: time to its first item, and in total."""
    original = getattr(owner, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        first = True
        async for item in original(*args, **kwargs):
            if first:
                TIMES[label + " (to first chunk)"].append(time.perf_counter_ns() - started)
                first = False
            yield item
        TIMES[label + " (whole stream)"].append(time.perf_counter_ns() - started)

    setattr(owner, name, wrapper)


def _time_finish() -> None:
    """Ledger.finish, counted once per hold: the relay's second call (a no-op) is left out."""
    original = Ledger.finish

    async def wrapper(self: Ledger, hold: Any, *args: Any, **kwargs: Any) -> None:
        if hold.done:
            return await original(self, hold, *args, **kwargs)
        started = time.perf_counter_ns()
        try:
            return await original(self, hold, *args, **kwargs)
        finally:
            TIMES["ledger settle + record (finish)"].append(time.perf_counter_ns() - started)

    Ledger.finish = wrapper  # type: ignore[method-assign]


def _time_batches() -> None:
    original = write_batcher.WriteBatcher._transaction

    async def wrapper(self: write_batcher.WriteBatcher, works: list[Any]) -> list[Any]:
        started = time.perf_counter_ns()
        try:
            return await original(self, works)
        finally:
            TIMES["writer: one transaction (batch)"].append(time.perf_counter_ns() - started)
            BATCH_SIZES.append(len(works))

    write_batcher.WriteBatcher._transaction = wrapper  # type: ignore[method-assign]


class _TimeRequests:
    """Outermost ASGI wrapper: from the app being called to its last send."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        try:
            await self.app(scope, receive, send)
        finally:
            TIMES["whole request in the app (ASGI)"].append(time.perf_counter_ns() - started)


def instrument() -> None:
    _timed_async(KeyAuthenticator, "authenticate", "key auth")
    _timed_async(routes_chat, "read_json_body", "read body + JSON decode")
    _timed_sync(routes_chat, "parse_chat_request", "validate chat request")
    _timed_async(routes_chat, "admit", "admission (rate limits)")
    _timed_async(Ledger, "authorize", "ledger reserve (authorize)")
    _time_finish()
    _timed_async(OpenAICompatProvider, "complete", "upstream call (non-stream)")
    _timed_stream(OpenAICompatProvider, "stream", "upstream stream")
    _timed_sync(relay_module, "observe_generation", "metrics + access-log observation")
    _time_batches()


def summary() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, values in TIMES.items():
        values = sorted(values)
        n = len(values)
        out[label] = {
            "n": n,
            "mean_us": round(sum(values) / n / 1000, 1),
            "p50_us": round(values[n // 2] / 1000, 1),
            "p90_us": round(values[min(n - 1, n * 9 // 10)] / 1000, 1),
            "p99_us": round(values[min(n - 1, n * 99 // 100)] / 1000, 1),
        }
    if BATCH_SIZES:
        out["writer: units per transaction"] = {
            "n": len(BATCH_SIZES),
            "mean": round(sum(BATCH_SIZES) / len(BATCH_SIZES), 2),
            "max": max(BATCH_SIZES),
        }
    return out


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    port, prefix = int(sys.argv[1]), sys.argv[2]
    profile = cProfile.Profile() if "--cprofile" in sys.argv else None
    settings = load_settings()
    configure_logging(settings.log_level)
    instrument()
    try:
        built = create_app(settings, tune_gc=True)  # as `polyroute serve` (create_server_app)
    except TypeError:  # a --rev from before the GC tuning
        built = create_app(settings)
    app = _TimeRequests(built)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="uvloop", http=_http_protocol(), lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the stop signal once it has shut down: turn it into SystemExit so the
    # finally below still writes the figures.
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    if profile is not None:
        profile.enable()
    try:
        server.run()
    finally:
        if profile is not None:
            profile.disable()
            profile.dump_stats(prefix + ".pstats")
        with open(prefix + ".steps.json", "w") as out:
            json.dump(summary(), out, indent=1)


def _http_protocol() -> Any:
    """`polyroute serve`'s protocol class where the measured src/ has one (else uvicorn's httptools)."""
    try:
        from polyroute.http.server_protocol import HttpProtocol
    except ImportError:
        return "httptools"
    return HttpProtocol


if __name__ == "__main__":
    main()

