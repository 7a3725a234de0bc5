"""One worker against two: CPU per request split into user and system time, and how often the two
workers' SQLite writers found each other's write lock taken.

    .venv/bin/python bench/perf/workers.py [--rounds 2] [--wrk-s 5] [--db sqlite|postgres] [--separate]

Same setup as `run.py` (nginx mock and wrk on cpu 1; one worker on cpu 0, two workers on cpus 0 and
1; each gateway with its own database and key), non-streaming requests only, rounds interleaved.
`--separate` adds a third row: two 1-worker gateways, one on cpu 0 and one on cpu 1, each with its
own database, loaded at once by two wrk processes with half the connections each: the same two
cores and load generator as the 2-worker gateway, but nothing shared between the workers (no
SQLite file, no Prometheus multiprocess files), so it tells the machine's share of the scaling
loss from the shared database's. At
exit each gateway worker logs its writer's commits, lock retries in the loop and lock waits on the
writer thread (`db/write_batcher.py`, logged only when there were retries); the script prints those
lines. Used to find where the two-worker scaling goes (bench/README.md, 2026-12-04).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gateway
import load
import mock_upstream
from database import PostgresDatabase
from procs import Proc, Processes, cpu_split, free_port

CHAT = "/api/v1/chat/completions"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--wrk-s", type=int, default=5)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--separate", action="store_true", help="add two 1-worker gateways on separate databases")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="polyroute-workers."))
    procs = Processes(root)
    names = ("one-worker", "two-workers", *(("separate-a", "separate-b") if args.separate else ()))
    suffixes = ("", "_2w", "_sa", "_sb")[: len(names)]
    databases = [PostgresDatabase(suffix=s) for s in suffixes] if args.db == "postgres" else []
    try:
        bodies = mock_upstream.write_bodies(root)
        _, nginx_port = mock_upstream.start_nginx(procs, root, "1")
        setups = []
        for index, name in enumerate(names):  # each its own database (as run.py)
            (root / name).mkdir()
            url = databases[index].create() if databases else None
            setups.append(gateway.prepare(root / name, nginx_port, free_port(), url, {}))
        one, port1 = gateway.launch(procs, setups[0], "polyroute-1w", "0", 1)
        two, port2 = gateway.launch(procs, setups[1], "polyroute-2w", "0,1", 2)
        gateway.wait_ready(one, port1)
        gateway.wait_ready(two, port2)
        pair = []
        if args.separate:
            for index, cpu in ((2, "0"), (3, "1")):
                proc, port = gateway.launch(procs, setups[index], f"polyroute-sep-{cpu}", cpu, 1)
                gateway.wait_ready(proc, port)
                pair.append((proc, port, setups[index].key))
        print(f"# {gateway.version_note()}, {args.db}, {args.conns} connections, {args.wrk_s} s rounds")
        print("| round | gateway | req/s | CPU ms/req | user | system | cores | p99 ms |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for round_ in range(1, args.rounds + 1):
            for name, proc, port, key in (
                ("1 worker", one, port1, setups[0].key),
                ("2 workers", two, port2, setups[1].key),
            ):
                (u0, s0), t0 = cpu_split(proc.pid), time.monotonic()
                url = f"http://127.0.0.1:{port}{CHAT}"
                result = load.wrk(url, bodies["json"], args.wrk_s, args.conns, "1", key, name)
                (u1, s1), elapsed = cpu_split(proc.pid), time.monotonic() - t0
                if result is None or result["errors"]:
                    print(f"# {name}: wrk failed or saw errors: {json.dumps(result)}", file=sys.stderr)
                    return 1
                n = result["requests"]
                print(
                    f"| {round_} | {name} | {n / args.wrk_s:,.0f} | {1000 * (u1 - u0 + s1 - s0) / n:.3f} "
                    f"| {1000 * (u1 - u0) / n:.3f} | {1000 * (s1 - s0) / n:.3f} "
                    f"| {(u1 - u0 + s1 - s0) / elapsed:.2f} | {result['p99_ms']:.1f} |",
                    flush=True,
                )
            if pair and not _separate_round(round_, pair, bodies["json"], args.wrk_s, args.conns):
                return 1
        procs.stop_all()
        for proc in (one, two):
            for line in proc.log_path.read_text(errors="replace").splitlines():
                if "SQLite writer:" in line:
                    print(f"# {proc.name}: {json.loads(line)['msg']}")
        return 0
    finally:
        procs.stop_all()
        for database in databases:
            database.drop()


def _separate_round(round_: int, pair: list[tuple[Proc, int, str]], body: Path, seconds: int, conns: int) -> bool:
    """Both separate gateways under load at once, half the connections each; one summed row."""
    before = [(cpu_split(proc.pid), proc) for proc, _, _ in pair]
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(pair)) as pool:
        runs = [
            pool.submit(load.wrk, f"http://127.0.0.1:{port}{CHAT}", body, seconds, conns // 2, "1", key, proc.name)
            for proc, port, key in pair
        ]
        results = [run.result() for run in runs]
    elapsed = time.monotonic() - t0
    if any(result is None or result["errors"] for result in results):
        print(f"# separate gateways: wrk failed or saw errors: {json.dumps(results)}", file=sys.stderr)
        return False
    rows = []
    for ((u0, s0), proc), result in zip(before, results, strict=True):
        assert result is not None
        u1, s1 = cpu_split(proc.pid)
        rows.append((f"separate, {proc.name}", result["requests"], u1 - u0, s1 - s0, result["p99_ms"]))
    total = ("2 x 1 worker, separate databases", *(sum(row[i] for row in rows) for i in (1, 2, 3)))
    for name, n, user, system, *p99 in [*rows, (*total, max(row[4] for row in rows))]:
        print(
            f"| {round_} | {name} | {n / seconds:,.0f} | {1000 * (user + system) / n:.3f} | {1000 * user / n:.3f} "
            f"| {1000 * system / n:.3f} | {(user + system) / elapsed:.2f} | {p99[0]:.1f} |",
            flush=True,
        )
    return True


if __name__ == "__main__":
    sys.exit(main())
