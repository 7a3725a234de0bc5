"""CPU time per request of two builds under the same load: many short alternating rounds, medians.

    .venv/bin/python bench/perf/cpu_ab.py --baseline COMMIT [--rounds 8] [--wrk-s 5] [--mode json|sse]

`run.sh --baseline` keeps the best of three rounds per target, which is right for throughput but
on this shared VM lets one lucky round decide (rounds of one build differ by ±10 to 20 %). Here
both 1-worker gateways (the working tree and `--baseline`, each with its own database and key,
same config) sit on cpu 0, nginx and wrk on cpu 1, and take turns: one warm-up round each, then
N rounds each in alternating order (A B, B A, ...), so a slow minute of the machine hits both.
Printed: each build's median and mean CPU ms per request (user + system, from /proc), its median
req/s, and the per-round ratio of the two, which is what to read: a change is real when most
rounds agree on its sign (2026-12-07: `run.sh --baseline` said 0.96x throughput where this said
0.86x CPU per request in 7 of 8 rounds, and callgrind 0.87x instructions).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import gateway
import load
import mock_upstream
from procs import Processes, cpu_split, free_port

CHAT = "/api/v1/chat/completions"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the other build: a commit's src/")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--wrk-s", type=int, default=5)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--mode", choices=("json", "sse"), default="json")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="polyroute-cpu-ab."))
    procs = Processes(root)
    try:
        bodies = mock_upstream.write_bodies(root)
        _, nginx_port = mock_upstream.start_nginx(procs, root, "1")
        targets = {}
        for name, rev in (("working tree", None), (args.baseline, args.baseline)):
            home = root / f"gw{len(targets)}"
            home.mkdir()
            extra = {} if rev is None else {"PYTHONPATH": str(gateway.export_src(rev, home / "rev")[1])}
            setup = gateway.prepare(home, nginx_port, free_port(), None, extra)
            proc, port = gateway.launch(procs, setup, f"gateway-{len(targets)}", "0", 1)
            gateway.wait_ready(proc, port)
            targets[name] = (proc, port, setup.key)
        rows: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
        names = list(targets)
        for index in range(args.rounds + 1):
            for name in names if index % 2 == 0 else names[::-1]:
                proc, port, key = targets[name]
                before = sum(cpu_split(proc.pid))
                url = f"http://127.0.0.1:{port}{CHAT}"
                result = load.wrk(url, bodies[args.mode], args.wrk_s, args.conns, "1", key, name)
                spent_s = sum(cpu_split(proc.pid)) - before
                if result is None or result["errors"] or not result["requests"]:
                    raise RuntimeError(f"{name}: wrk failed or saw errors: {result}")
                if index:  # round 0 warms both up
                    rows[name].append((spent_s * 1000 / result["requests"], result["requests"] / args.wrk_s))
    finally:
        procs.stop_all()
    shape = f"{args.mode}, {args.rounds} rounds of {args.wrk_s} s"
    print(f"| build | CPU ms/request, median | mean | req/s, median | ({shape}) |")
    print("|---|---:|---:|---:|---|")
    for name, values in rows.items():
        cpu = [v[0] for v in values]
        print(f"| {name} | {statistics.median(cpu):.3f} | {statistics.mean(cpu):.3f} | "
              f"{statistics.median(v[1] for v in values):,.0f} | |")  # fmt: skip
    ratios = [a[0] / b[0] for a, b in zip(*rows.values(), strict=True)]
    print(f"\nworking tree / {args.baseline}, CPU per request, round by round: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"median {statistics.median(ratios):.3f}; lower in {sum(r < 1 for r in ratios)} of {len(ratios)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
