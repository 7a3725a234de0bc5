"""Cost of the observability middleware per request (not a test: run it with python).

    .venv/bin/python tests/unit/observability/measure_middleware.py

Drives a trivial Starlette route through the full ASGI stack, with and without the middleware,
with the access log enabled (JSON to /dev/null) as in production; prints microseconds per request.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route

from polyroute.observability.log_format import JsonFormatter, RequestIdFilter
from polyroute.observability.middleware import ObservabilityMiddleware
from polyroute.observability.scrub import Scrubber


async def ok(request: object) -> Response:
    return Response(b"{}", media_type="application/json")


def app(with_middleware: bool) -> Starlette:
    middleware = [Middleware(ObservabilityMiddleware)] if with_middleware else []
    return Starlette(routes=[Route("/api/v1/models", ok)], middleware=middleware)


async def drive(asgi: Starlette, n: int) -> float:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/models",
        "raw_path": b"/api/v1/models",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"host", b"x")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        return None

    started = time.perf_counter()
    for _ in range(n):
        await asgi(dict(scope), receive, send)
    return (time.perf_counter() - started) / n * 1e6


async def main() -> None:
    handler = logging.FileHandler("/dev/null")
    handler.setFormatter(JsonFormatter(Scrubber.from_env({"ACME_API_KEY": "x" * 40})))
    handler.addFilter(RequestIdFilter())
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel("INFO")
    plain, observed = app(False), app(True)
    await drive(plain, 2000)
    await drive(observed, 2000)
    rounds = [(await drive(plain, 5000), await drive(observed, 5000)) for _ in range(5)]
    base = min(r[0] for r in rounds)
    with_mw = min(r[1] for r in rounds)
    print(f"without: {base:.1f} us/request  with: {with_mw:.1f} us/request  cost: {with_mw - base:.1f} us")


if __name__ == "__main__":
    asyncio.run(main())
