"""Instructions per chat request, counted by valgrind's callgrind: an A/B that a shared machine cannot blur.

    .venv/bin/python bench/perf/instructions.py [--rev COMMIT] [--baseline COMMIT] [--requests 150]
                                                [--concurrency 1] [--gateway-env NAME=VALUE]

On this shared 2-core VM the CPU time per request moves by 15 to 30 % from one wrk round to the next,
so a 5 % change cannot be seen in `run.sh`'s figures. callgrind counts the instructions the gateway
process executes in user space (its Python, the C extensions, uvloop, SQLite), which stay the same
for the same code and inputs whatever else the machine does. Each variant (the working tree or
`--rev`, and `--baseline`) runs `polyroute serve` under callgrind with the same config, database
kind, key and credits as `run.py`, against the nginx mock; after a warm-up the counters are zeroed,
N sequential non-streaming requests are sent, the counters dumped, and the same again for streams.
With `--concurrency C`, C connections send the N requests at once (N/C each), so the ledger's
group commit batches them as under load (under callgrind batches grow larger than at full speed).
`--gateway-env` sets a variable for both variants' gateways (e.g. POLYROUTE_LOG_LEVEL=WARNING, to
count what the access line costs by its absence); `--model` sends the non-streaming requests to
another model of the bench config (`mock/fast:free`: no reserve and no charge, the record still
written; give it POLYROUTE_FREE_RPM and POLYROUTE_FREE_RPD high enough for N).

The key cache's TTL (and with it the provider-defaults and free-balance caches') is an hour unless
`--gateway-env` sets POLYROUTE_KEY_CACHE_TTL_S: their refresh reads come once per TTL of wall time,
which under callgrind is a few dozen requests rather than a couple of thousand, so with the 1 s
default they added about 90,000 instructions to each request and moved with the machine's speed.

What it does not count: the kernel's work (system calls, loopback TCP), so fewer writes or fewer
packets show up in `run.sh`'s CPU time, not here; and time spent waiting. Background timers (the
WAL checkpointer, lease renewals) add a little per second of wall time; under callgrind a request
takes about 50 times as long, so keep N the same across variants. Both variants run at once (one
core each): instruction counts do not depend on contention.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gateway
import mock_upstream
import seq_latency
from procs import Processes, free_port

CHAT = "/api/v1/chat/completions"
_SUMMARY = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="measure this commit's src/ instead of the working tree")
    parser.add_argument("--baseline", help="also measure this commit's src/, side by side")
    parser.add_argument("--requests", type=int, default=150, help="measured requests per kind")
    parser.add_argument("--warmup", type=int, default=40, help="requests per kind before counting")
    parser.add_argument("--concurrency", type=int, default=1, help="connections sending the requests at once")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE", help="extra gateway env")
    parser.add_argument(
        "--model", default=mock_upstream.MODEL_JSON, help=f"non-streaming model (e.g. {gateway.FREE_MODEL}: no money)"
    )
    args = parser.parse_args()
    variants = [("after", args.rev)] + ([("before", args.baseline)] if args.baseline else [])
    root = Path(tempfile.mkdtemp(prefix="polyroute-instr."))
    procs = Processes(root)
    try:
        mock_upstream.write_bodies(root)
        _, nginx_port = mock_upstream.start_nginx(procs, root, None)
        with ThreadPoolExecutor(len(variants)) as pool:
            jobs = [
                pool.submit(
                    _measure,
                    procs,
                    root / name,
                    name,
                    rev,
                    nginx_port,
                    args.requests,
                    args.warmup,
                    args.concurrency,
                    gateway.parse_env_pairs(args.gateway_env),
                    args.model,
                )
                for name, rev in variants
            ]
            results = [job.result() for job in jobs]
    finally:
        procs.stop_all()
    shape = f"N = {args.requests}" + (f", {args.concurrency} at once" if args.concurrency > 1 else "")
    print(f"| variant | non-stream instructions/request | stream instructions/request | ({shape}) |")
    print("|---|---:|---:|---|")
    for label, json_ir, sse_ir in results:
        print(f"| {label} | {json_ir:,.0f} | {sse_ir:,.0f} | |")
    if len(results) == 2:
        (_, after_json, after_sse), (_, before_json, before_sse) = results
        print(f"| after / before | {after_json / before_json:.3f} | {after_sse / before_sse:.3f} | |")
    return 0


def _measure(
    procs: Processes,
    root: Path,
    name: str,
    rev: str | None,
    nginx_port: int,
    requests: int,
    warmup: int,
    concurrency: int = 1,
    gateway_env: dict[str, str] | None = None,
    json_model: str = mock_upstream.MODEL_JSON,
) -> tuple[str, float, float]:
    root.mkdir(parents=True)
    # A long key-cache TTL unless asked otherwise: the caches' refresh reads come once per TTL of wall
    # time, about 2,000 requests at full speed but only a few dozen under callgrind, where they added
    # some 90,000 instructions to every request and moved with the machine's speed (2026-12-07).
    extra = {"POLYROUTE_KEY_CACHE_TTL_S": "3600", **(gateway_env or {}), "PYTHONHASHSEED": "0"}
    label = "working tree"
    if rev:  # the variant's own code creates its database too (its migrations may be older)
        label, src = gateway.export_src(rev, root / "rev")
        extra["PYTHONPATH"] = str(src)
    setup = gateway.prepare(root, nginx_port, free_port(), None, extra)
    port = free_port()
    out = root / "callgrind.out"
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--compress-strings=no",  # each dump self-contained, so callgrind_annotate can read it alone
        f"--callgrind-out-file={out}",
        sys.executable,
        str(gateway.POLYROUTE),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(setup.config),
    ]
    proc = procs.start(f"gateway-{name}", argv, cpus=None, env=setup.env)
    gateway._wait_ready(port, proc, timeout_s=600)
    figures = []
    for model, stream in ((json_model, False), (mock_upstream.MODEL_SSE, True)):
        body = mock_upstream.client_body(model, stream=stream)
        conns = [seq_latency.Connection(port, CHAT, body, setup.key, 600) for _ in range(concurrency)]
        each = requests // concurrency
        with ThreadPoolExecutor(concurrency) as senders:
            list(senders.map(_send, conns, [max(1, warmup // concurrency)] * concurrency))
            _callgrind_control("-z", proc.pid)
            list(senders.map(_send, conns, [each] * concurrency))
        before = set(root.glob("callgrind.out*"))
        _callgrind_control("-d", proc.pid)
        dump = _new_dump(root, before)
        figures.append(_instructions(dump) / (each * concurrency))
        print(f"# {name} {'stream' if stream else 'non-stream'}: {dump} (callgrind_annotate reads it)", flush=True)
        for conn in conns:
            conn.close()
    return label, figures[0], figures[1]


def _send(conn: seq_latency.Connection, count: int) -> None:
    for _ in range(count):
        _ok(conn.call()[0])


def _ok(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"a measured request failed with {status}")


def _callgrind_control(flag: str, pid: int) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True, timeout=300)


def _new_dump(root: Path, before: set[Path]) -> Path:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        new = set(root.glob("callgrind.out*")) - before
        if new:
            time.sleep(0.5)  # let it finish writing
            return max(new, key=lambda path: path.stat().st_mtime)
        time.sleep(0.2)
    raise RuntimeError("callgrind wrote no dump")


def _instructions(dump: Path) -> int:
    found = _SUMMARY.search(dump.read_bytes())
    if found is None:
        raise RuntimeError(f"no instruction total in {dump}")
    return int(found.group(1))


if __name__ == "__main__":
    sys.exit(main())
