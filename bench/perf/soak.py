"""Memory under sustained load: does a worker's RSS stay flat? (issue #9: "flat over a 30-minute soak")

    .venv/bin/python bench/perf/soak.py [--minutes 30] [--segment-s 60] [--conns 16] [--db postgres]

Starts the nginx mock and `polyroute serve` with one worker on cpu 0, every feature on as in `run.py`
(key auth, ledger, records, rate limits, metrics), then alternates wrk segments of non-streaming and
streaming requests (load on cpu 1) for `--minutes`, reading the worker's VmRSS after each segment.
Prints every sample with the requests and errors of its segment, then the change after the first
tenth of the run (warm-up: caches, pools, SQLite's WAL and page cache) and a least-squares slope in
MB per 10 minutes over the same part. Traffic goes to 127.0.0.1 only and stops at `--minutes`.

`--breakdown` adds, per sample, where the RSS is: anonymous vs file-backed pages, the worker's
thread count, and SQLite's own allocator total (`sqlite3_memory_used()`, read by attaching gdb for
a moment), to tell the library's page caches from Python's heap and malloc's arenas.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gateway
import load
import mock_upstream
from database import PostgresDatabase
from procs import Proc, Processes, free_port

CHAT = "/api/v1/chat/completions"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--segment-s", type=int, default=60)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--breakdown", action="store_true", help="anon/file RSS, threads, SQLite's heap")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--rev", help="soak this commit's src/ (git archive) instead of the working tree")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="polyroute-soak."))
    procs = Processes(root)
    database = PostgresDatabase() if args.db == "postgres" else None
    try:
        bodies = mock_upstream.write_bodies(root)
        _, nginx_port = mock_upstream.start_nginx(procs, root, "1")
        url = database.create() if database is not None else None
        setup = gateway.prepare(root, nginx_port, free_port(), url, gateway.parse_env_pairs(args.gateway_env))
        if args.rev:
            setup.env["PYTHONPATH"] = str(gateway.export_src(args.rev, root / "rev")[1])
        proc, port = gateway.launch(procs, setup, "gateway", "0", 1)
        gateway.wait_ready(proc, port)
        samples = _soak(args, proc, port, setup.key, bodies)
    finally:
        procs.stop_all()
        if database is not None:
            database.drop()
        shutil.rmtree(root, ignore_errors=True)  # a 30-minute run's database is hundreds of MB
    _report(samples, args)
    return 0 if all(errors == 0 for _, _, _, errors in samples) else 1


def _soak(
    args: argparse.Namespace, proc: Proc, port: int, key: str, bodies: dict[str, Path]
) -> list[tuple[float, float, int, int]]:
    """(minutes since start, RSS MB, requests, errors) after each segment."""
    started = time.monotonic()
    samples = [(0.0, gateway.worker_rss_mb(proc)[0], 0, 0)]
    kinds = ("json", "sse")
    segment = 0
    while (time.monotonic() - started) / 60 < args.minutes:
        kind = kinds[segment % 2]
        left_s = int(args.minutes * 60 - (time.monotonic() - started))
        seconds = max(1, min(args.segment_s, left_s))
        result = load.wrk(f"http://127.0.0.1:{port}{CHAT}", bodies[kind], seconds, args.conns, "1", key, kind)
        requests = int(result["requests"]) if result else 0
        errors = int(result["errors"]) if result else 1
        minutes = (time.monotonic() - started) / 60
        rss = gateway.worker_rss_mb(proc)[0]
        samples.append((minutes, rss, requests, errors))
        extra = _breakdown(gateway.workers(proc)[0]) if args.breakdown else ""
        line = f"# {minutes:6.1f} min  {kind:4}  {requests:7,} requests  {errors} errors  RSS {rss:6.1f} MB"
        print(line + extra, flush=True)
        segment += 1
    return samples


def _breakdown(pid: int) -> str:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0])  # kB
    threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    sqlite_mb = "?"
    if shutil.which("gdb"):
        command = ["gdb", "-p", str(pid), "-batch", "-ex", "print (long long) sqlite3_memory_used()"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
        values = [line.split("=")[-1].strip() for line in out.splitlines() if line.startswith("$1")]
        sqlite_mb = f"{int(values[0]) / 1e6:.1f}" if values else "?"
    anon_mb, rss_mb = fields.get("Anonymous", 0) / 1024, fields.get("Rss", 0) / 1024
    return f"  anon {anon_mb:6.1f}  file {rss_mb - anon_mb:5.1f}  threads {threads:2}  sqlite {sqlite_mb} MB"


def _report(samples: list[tuple[float, float, int, int]], args: argparse.Namespace) -> None:
    total = sum(requests for _, _, requests, _ in samples)
    errors = sum(errors for _, _, _, errors in samples)
    warm = [s for s in samples if s[0] >= args.minutes / 10] or samples
    xs, ys = [s[0] for s in warm], [s[1] for s in warm]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0
    print()
    print(f"| soak ({args.db}, {args.conns} connections, {args.minutes:g} min) | value |")
    print("|---|---:|")
    print(f"| requests (errors) | {total:,} ({errors}) |")
    print(
        f"| RSS at start / after warm-up / at end / peak MB | {samples[0][1]:.1f} / {warm[0][1]:.1f} / "
        f"{samples[-1][1]:.1f} / {max(s[1] for s in samples):.1f} |"
    )
    print(f"| RSS change after warm-up MB | {samples[-1][1] - warm[0][1]:+.1f} |")
    print(f"| least-squares slope after warm-up, MB per 10 min | {slope * 10:+.2f} |")


if __name__ == "__main__":
    sys.exit(main())
