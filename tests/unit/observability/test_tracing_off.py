"""Tracing off costs nothing: the tracing SDK is never imported and no OpenTelemetry code runs per request.

Each case runs in a fresh interpreter (this test process may have imported OpenTelemetry for other
tests): it starts the app with its lifespan, sends a few requests through the whole stack while a
profile hook counts calls into OpenTelemetry code, and reports those and the modules imported. With
`POLYROUTE_TRACING=otlp` the same script must see the SDK and its calls, so the checks can fail.

(redis-py imports `opentelemetry.sdk.metrics` at import time whenever the SDK is installed, for its
own opt-in metrics: that is startup only and not ours, so the module check names the tracing parts.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.gateway import clean_env

SCRIPT = """
import json, sys, threading
from starlette.testclient import TestClient
from polyroute.http.app import create_app
from polyroute.observability import tracing

counting, otel_calls = False, []

def profile(frame, event, arg):
    if counting and event == "call" and "/opentelemetry/" in frame.f_code.co_filename:
        otel_calls.append(frame.f_code.co_name)

threading.setprofile(profile)  # TestClient serves the app from its own thread
sys.setprofile(profile)
with TestClient(create_app()) as client:
    counting = True
    statuses = [
        client.get("/healthz").status_code,
        client.get("/api/v1/models").status_code,
        client.post(
            "/api/v1/chat/completions",
            json={"model": "x/y", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": "Bearer sk-or-v1-unknown-key-0000000000000000"},
        ).status_code,
    ]
    with tracing.span("polyroute.test"):
        tracing.attempt_started("p", "m", "u")
        tracing.attempt_failed("http", 503)
    counting = False
sys.setprofile(None)
modules = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "polyroute.observability")))
print(json.dumps({"statuses": statuses, "otel_calls": len(otel_calls), "modules": modules}))
"""
TRACING_MODULES = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "polyroute.observability.otel_traces",
    "polyroute.observability.tracing_middleware",
)


def run_app(tmp_path: Path, **env: str) -> dict[str, list]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=clean_env({"POLYROUTE_DATA_DIR": str(tmp_path), "POLYROUTE_LOG_LEVEL": "WARNING", **env}),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_with_tracing_off_no_tracing_module_is_imported_and_no_opentelemetry_code_runs(tmp_path):
    report = run_app(tmp_path)
    assert report["statuses"] == [200, 200, 401]
    assert report["otel_calls"] == 0
    assert "polyroute.observability.tracing" in report["modules"]
    assert [m for m in TRACING_MODULES if m in report["modules"]] == []


def test_with_tracing_on_the_sdk_is_loaded_and_called(tmp_path):
    report = run_app(
        tmp_path,
        POLYROUTE_TRACING="otlp",
        OTEL_TRACES_SAMPLER="always_off",  # nothing to export to the closed port below
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    )
    assert report["statuses"] == [200, 200, 401]
    assert report["otel_calls"] > 0
    assert [m for m in TRACING_MODULES if m in report["modules"]] == list(TRACING_MODULES)
