"""One worker against two on the same database: CPU per request split into user and system time,
and how often the SQLite writers found each other's write lock taken.

    .venv/bin/python bench/perf/workers.py [--rounds 2] [--wrk-s 5] [--db sqlite|postgres]

Same setup as `run.py` (nginx mock and wrk on cpu 1; one worker on cpu 0, two workers on cpus 0 and
1), non-streaming requests only, rounds interleaved. At exit each gateway worker logs its writer's
commits, lock retries in the loop and lock waits on the writer thread (`db/write_batcher.py`, logged
only when there were retries); the script prints those lines. Used to find where the two-worker
scaling goes (bench/README.md, 2026-12-04).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import gateway
import load
import mock_upstream
from database import PostgresDatabase
from procs import Proc, Processes, free_port, group_members

CHAT = "/api/v1/chat/completions"
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_split(proc: Proc) -> tuple[float, float]:
    """User and system CPU seconds of a gateway's process group so far."""
    user = system = 0
    for pid in group_members(proc.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / _TICKS, system / _TICKS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--wrk-s", type=int, default=5)
    parser.add_argument("--conns", type=int, default=32)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="polyroute-workers."))
    procs = Processes(root)
    database = PostgresDatabase() if args.db == "postgres" else None
    try:
        bodies = mock_upstream.write_bodies(root)
        _, nginx_port = mock_upstream.start_nginx(procs, root, "1")
        setup = gateway.prepare(root, nginx_port, free_port(), database.create() if database else None, {})
        one, port1 = gateway.launch(procs, setup, "polyroute-1w", "0", 1)
        two, port2 = gateway.launch(procs, setup, "polyroute-2w", "0,1", 2)
        gateway.wait_ready(one, port1)
        gateway.wait_ready(two, port2)
        print(f"# {gateway.version_note()}, {args.db}, {args.conns} connections, {args.wrk_s} s rounds")
        print("| round | gateway | req/s | CPU ms/req | user | system | cores | p99 ms |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for round_ in range(1, args.rounds + 1):
            for name, proc, port in (("1 worker", one, port1), ("2 workers", two, port2)):
                (u0, s0), t0 = cpu_split(proc), time.monotonic()
                url = f"http://127.0.0.1:{port}{CHAT}"
                result = load.wrk(url, bodies["json"], args.wrk_s, args.conns, "1", setup.key, name)
                (u1, s1), elapsed = cpu_split(proc), time.monotonic() - t0
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
        if database is not None:
            database.drop()


if __name__ == "__main__":
    sys.exit(main())
