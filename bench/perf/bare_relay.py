"""A Python relay with no features, as the second reference beside LiteLLM (issue #9's "bare relay").

It is `bench/stack/relay.py` in the configuration ADR 0001 chose for polyroute: Starlette routing
with the lean SSE answer (`starlette-lean`), uvicorn with uvloop and httptools, a pooled aiohttp
client, msgspec. Per request it parses the body, rewrites `model`, calls the nginx mock, rewrites
`id`/`model`/`provider` and answers; no key auth, ledger, records, rate limits, metrics or access
log. What polyroute costs beyond it is what its features cost, on the same machine in the same run,
and the issue's moonshot is polyroute at half of its non-streaming throughput.

It runs on the gateway's core from the project venv. The stack relay asks the mock for streams at
`/v1/sse/chat/completions`, which bench/perf/nginx.conf answers like `/sse/v1/chat/completions`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gateway import base_env, http
from procs import Proc, Processes, free_port, wait_for_port

STACK = Path(__file__).resolve().parents[1] / "stack"


def start(procs: Processes, nginx_port: int, cpus: str | None) -> tuple[Proc, int]:
    port = free_port()
    env = base_env(
        {
            "RELAY_FRAMEWORK": "starlette-lean",
            "RELAY_CLIENT": "aiohttp",
            "RELAY_JSON": "msgspec",
            "UPSTREAM": f"http://127.0.0.1:{nginx_port}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    argv = [sys.executable, "-m", "uvicorn", "relay:app", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    proc = procs.start("bare-relay", argv, cpus=cpus, env=env, cwd=STACK)
    wait_for_port(port, proc, 30)
    return proc, port


def check(port: int, json_body: bytes, sse_body: bytes) -> str:
    """One request of each kind must come back whole, or the bare relay's rows are dropped."""
    status, _, body = http("POST", port, "/api/v1/chat/completions", json_body, None)
    if status != 200 or b'"provider"' not in body:
        return f"non-stream HTTP {status}: {body[:200]!r}"
    status, _, body = http("POST", port, "/api/v1/chat/completions", sse_body, None)
    if status != 200 or b"data: [DONE]" not in body:
        return f"stream HTTP {status}: {body[-200:]!r}"
    return "ok"
