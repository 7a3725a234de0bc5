"""One worker against two: CPU per request split into user and system time, and how often the two
workers' SQLite writers found each other's write lock taken.

    .venv/bin/python bench/perf/workers.py [--rounds 2] [--wrk-s 5] [--db sqlite|postgres]

Same setup as `run.py` (nginx mock and wrk on cpu 1; one worker on cpu 0, two workers on cpus 0 and
1; each gateway with its own database and key), non-streaming requests only, rounds interleaved. At
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
from pathlib import Path

import gateway
import load
import mock_upstream
from database import PostgresDatabase
from procs import Processes, cpu_split, free_port

CHAT = "/api/v1/chat/completions"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--wrk-s", type=int, default=5)
    parser.add_argument("--conns", type=int, default=32)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="polyroute-workers."))
    procs = Processes(root)
    databases = [PostgresDatabase(suffix=s) for s in ("", "_2w")] if args.db == "postgres" else []
    try:
        bodies = mock_upstream.write_bodies(root)
        _, nginx_port = mock_upstream.start_nginx(procs, root, "1")
        setups = []
        for index, name in enumerate(("one-worker", "two-workers")):  # each its own database (as run.py)
            (root / name).mkdir()
            url = databases[index].create() if databases else None
            setups.append(gateway.prepare(root / name, nginx_port, free_port(), url, {}))
        one, port1 = gateway.launch(procs, setups[0], "polyroute-1w", "0", 1)
        two, port2 = gateway.launch(procs, setups[1], "polyroute-2w", "0,1", 2)
        gateway.wait_ready(one, port1)
        gateway.wait_ready(two, port2)
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


if __name__ == "__main__":
    sys.exit(main())
