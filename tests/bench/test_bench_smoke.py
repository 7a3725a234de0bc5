"""Smoke test of the performance harness: `bench/perf/run.py --quick` runs end to end (about 30 s),
every row of its report is there, nothing failed, and the gateway stays above a generous floor.

The floor is a ratio within the same run, so a loaded CI machine does not make it flaky: polyroute's
non-streaming throughput (one worker, every feature on, SQLite) over nginx answering the same
request directly. At commit b2e977c (2026-11-22) it measured 0.027 in the full run, and 0.016 in
quick runs while other test suites kept the machine's load average at 3 to 5. The floor, 0.003, is
a fifth of the loaded figure. A second floor compares polyroute with the bare Python relay on the
same core (bench/perf/bare_relay.py: the same stack with no features), which moves with the
machine as polyroute does: 0.45 in a quick run at 313b304 (2026-12-05), floor 0.1. Raise both as
the gateway gets faster (bench/README.md has the latest figures). wrk, nginx and taskset are
required: the test fails, never skips, when they are missing (Debian: `apt-get install -y wrk
nginx`; taskset is in util-linux).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUN = Path(__file__).resolve().parents[2] / "bench" / "perf" / "run.py"
FLOOR_VS_DIRECT = 0.003  # polyroute / nginx, non-streaming req/s at 32 connections
FLOOR_VS_BARE = 0.1  # polyroute / the bare Python relay, non-streaming req/s at 32 connections
RUN_TIMEOUT_S = 150


def run_quick(tmp_path: Path) -> tuple[dict[str, Any], str]:
    report = tmp_path / "perf.md"
    argv = [sys.executable, str(RUN), "--quick", "--out", str(report), "--json", str(tmp_path / "perf.json")]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # leave no __pycache__ in bench/perf
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the harness stops what it started, then exits
        _, stderr = proc.communicate(timeout=30)
        pytest.fail(f"bench/perf/run.py --quick took more than {RUN_TIMEOUT_S} s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, f"bench/perf/run.py --quick failed ({proc.returncode}):\n{stderr[-3000:]}"
    return json.loads((tmp_path / "perf.json").read_text()), report.read_text()


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_quick_benchmark_reports_every_row_and_the_gateway_clears_the_floor(tmp_path: Path) -> None:
    missing = [tool for tool in ("wrk", "nginx", "taskset") if shutil.which(tool) is None]
    assert not missing, f"missing {missing}: apt-get install -y wrk nginx (taskset is in util-linux)"

    results, report = run_quick(tmp_path)

    seq, tp, mem = results["sequential"], results["throughput"], results["memory"]
    for path in ("direct", "polyroute"):
        for column in ("json_p50_ms", "json_p99_ms", "ttft_p50_ms", "ttft_p99_ms", "sse_p50_ms", "sse_p99_ms"):
            assert seq[path][column] is not None, f"sequential {path} {column} missing"
        assert seq[path]["errors"] == 0, f"sequential {path}: {seq[path]['errors']} failed requests"
    for target in ("direct", "bare_relay", "polyroute_1w", "polyroute_2w"):
        for mode in ("json", "sse"):
            cell = tp[target][mode]
            assert cell["rps"] > 0, f"{target} {mode}: no throughput"
            assert cell["errors"] == 0, f"{target} {mode}: {cell['errors']} errors (non-2xx, timeouts, resets)"
    assert mem["rss_1w_mb"] and len(mem["rss_2w_mb"]) == 2, mem
    streams = mem["streams"]
    assert streams["open"] == streams["ok"] == streams["streams"], streams
    features = results["meta"]["features"]
    assert features["key auth"].startswith("on"), features
    assert features["generation records"].startswith("on"), features
    assert features["rate limiting"].startswith("on"), features
    assert features["metrics"].startswith("on"), features
    assert features["ledger reserve+settle"].startswith("on"), features
    for heading in ("### Sequential", "### Throughput", "### Memory", "### Targets"):
        assert heading in report
    assert "polyroute / bare Python relay" in report and "moonshot" in report

    ratio = tp["polyroute_1w"]["json"]["rps"] / tp["direct"]["json"]["rps"]
    assert ratio >= FLOOR_VS_DIRECT, (
        f"polyroute answered {tp['polyroute_1w']['json']['rps']:.0f} req/s vs nginx's "
        f"{tp['direct']['json']['rps']:.0f} ({ratio:.4f}x): below the floor {FLOOR_VS_DIRECT}x\n{report}"
    )
    vs_bare = tp["polyroute_1w"]["json"]["rps"] / tp["bare_relay"]["json"]["rps"]
    assert vs_bare >= FLOOR_VS_BARE, (
        f"polyroute answered {tp['polyroute_1w']['json']['rps']:.0f} req/s vs the bare relay's "
        f"{tp['bare_relay']['json']['rps']:.0f} ({vs_bare:.3f}x): below the floor {FLOOR_VS_BARE}x\n{report}"
    )
