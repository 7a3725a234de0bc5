"""Where a chat request's time goes inside the gateway: wall-clock µs per step, and a cProfile under load.

    .venv/bin/python bench/perf/hotpath.py [--db sqlite|postgres] [--seq 2000] [--wrk-s 8] [--rev COMMIT]

Same setup as `run.py` (nginx mock on cpu 1, gateway pinned to cpu 0, a key and credits), but the
gateway is `hotpath_server.py`: `polyroute serve`'s stack with a timer around each step of a chat
request (see that file). Two phases, each on a fresh gateway process:

1. sequential: N non-streaming and N streaming requests on one keep-alive connection (no queueing),
   so each step's time is its latency alone; prints p50/p90/p99 µs per step;
2. load: wrk at 32 connections for S seconds per mode, under cProfile (the top functions by own
   time and by cumulative time are printed; the .pstats file is kept under bench/perf/results/).

cProfile slows Python code down by about 2x, so read its output as shares, not as absolute cost.
"""

from __future__ import annotations

import argparse
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gateway
import load
import mock_upstream
import seq_latency
from database import PostgresDatabase
from procs import Processes, free_port, wait_for_port

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CHAT = "/api/v1/chat/completions"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seq", type=int, default=2000)
    parser.add_argument("--wrk-s", type=int, default=8)
    parser.add_argument("--no-cprofile", action="store_true", help="load phase without cProfile")
    parser.add_argument("--rev", help="profile this commit's src/ (git archive)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="polyroute-profile."))
    procs = Processes(root)
    database = PostgresDatabase() if args.db == "postgres" else None
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        bodies = mock_upstream.write_bodies(root)
        _, nginx_port = mock_upstream.start_nginx(procs, root, "1")
        extra = gateway.parse_env_pairs(args.gateway_env)
        if args.rev:
            extra["PYTHONPATH"] = str(gateway.export_src(args.rev, root / "rev")[1])
        setup = gateway.prepare(root, nginx_port, free_port(), database.create() if database else None, extra)
        print(f"# {gateway.version_note()}, {args.db}, load average {_load()}", flush=True)

        prefix = str(RESULTS / f"profile-{stamp}-{args.db}-seq")
        port = _start(procs, setup, prefix, cprofile=False)
        conns = {
            "json": seq_latency.Connection(port, CHAT, bodies["json"].read_bytes(), setup.key),
            "sse": seq_latency.Connection(port, CHAT, bodies["sse"].read_bytes(), setup.key),
        }
        samples = seq_latency.measure(conns, args.seq, max_s=120)
        _stop(procs)
        print(f"\n## Sequential, {args.seq} per kind (client-side p50: json "
              f"{seq_latency.percentile_ms(samples['json'].total_ns, 50):.3f} ms, sse TTFT "
              f"{seq_latency.percentile_ms(samples['sse'].ttft_ns, 50):.3f} ms)\n")  # fmt: skip
        _print_steps(prefix + ".steps.json")

        if args.wrk_s:
            prefix = str(RESULTS / f"profile-{stamp}-{args.db}-load")
            port = _start(procs, setup, prefix, cprofile=not args.no_cprofile)
            for mode, body in (("json", bodies["json"]), ("sse", bodies["sse"])):
                result = load.wrk(f"http://127.0.0.1:{port}{CHAT}", body, args.wrk_s, 32, "1", setup.key, mode)
                print(f"# wrk {mode}: {result and round(result['requests'] / args.wrk_s)} req/s", flush=True)
            _stop(procs)
            print(f"\n## Under load (32 connections, {args.wrk_s} s per mode)\n")
            _print_steps(prefix + ".steps.json")
            if not args.no_cprofile:
                stats = pstats.Stats(prefix + ".pstats")
                stats.sort_stats("tottime").print_stats(35)
                stats.sort_stats("cumulative").print_stats(45)
                print(f"# profile kept at {prefix}.pstats")
    finally:
        procs.stop_all()
        if database is not None:
            database.drop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


_SERVER: list[Any] = []


def _start(procs: Processes, setup: gateway.Setup, prefix: str, *, cprofile: bool) -> int:
    port = free_port()
    argv = [sys.executable, str(HERE / "hotpath_server.py"), str(port), prefix, *(["--cprofile"] if cprofile else [])]
    env = dict(setup.env, POLYROUTE_CONFIG=str(setup.config))
    env["PYTHONPATH"] = ":".join(p for p in (env.get("PYTHONPATH"), str(gateway.ROOT / "src")) if p)
    proc = procs.start("hotpath", argv, cpus="0", env=env)
    wait_for_port(port, proc, 60)
    _SERVER[:] = [proc]
    return port


def _stop(procs: Processes) -> None:
    procs.stop(_SERVER[0], timeout_s=60)


def _print_steps(path: str) -> None:
    steps = json.loads(Path(path).read_text())
    print("| step | n | mean µs | p50 µs | p90 µs | p99 µs |\n|---|---:|---:|---:|---:|---:|")
    for label, row in steps.items():
        if "p50_us" in row:
            print(f"| {label} | {row['n']} | {row['mean_us']} | {row['p50_us']} | {row['p90_us']} | {row['p99_us']} |")
        else:
            print(f"| {label} | {row['n']} | mean {row['mean']} | max {row['max']} | | |")
    print(flush=True)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
