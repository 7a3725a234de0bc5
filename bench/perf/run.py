"""polyroute's performance harness (issue #9): one command, every feature on, a markdown table out.

    bench/perf/run.sh [--quick] [--no-litellm] [--db sqlite|postgres] [--rev COMMIT] [--out FILE]

Starts the nginx mock upstream, a drip upstream for slow streams, polyroute with one worker (on the
gateway core) and with two workers (on both cores), a bare Python relay with no features (on the
gateway core: the issue's second reference) and, in the full run, LiteLLM's proxy; then
measures sequential added latency and time-to-first-token overhead, throughput at 32 connections,
RSS, and RSS under N concurrent slow streams, and prints the report (also written to FILE and
FILE.json). Everything runs on 127.0.0.1, in one temp dir, and every process started is stopped by
its own process group on exit, error or interrupt. The method is in docs/adr/0003-benchmark-method.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bare_relay
import gateway
import litellm_proxy
import load
import memory
import mock_upstream
import report
import seq_latency
from database import PostgresDatabase
from procs import Proc, Processes, free_port, group_members, rss_mb, wait_for_port

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent
STARTED = time.monotonic()
MODES = {
    #        seq requests, seq cap s, wrk s, rounds, warm s, streams, litellm
    "quick": (200, 12, 2, 1, 1, 200, False),
    "full": (2000, 150, 5, 3, 1, 1000, True),
}


def say(text: str) -> None:
    print(f"# [{time.monotonic() - STARTED:5.1f}s] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s), no LiteLLM, 200 slow streams")
    parser.add_argument("--litellm", action=argparse.BooleanOptionalAction, default=None, help="measure LiteLLM too")
    parser.add_argument(
        "--bare", action=argparse.BooleanOptionalAction, default=True, help="measure a bare Python relay too"
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite", help="gateway database")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, help="markdown report path (default: bench/perf/results/...)")
    parser.add_argument("--json", type=Path, help="results JSON path (default: the report path + .json)")
    parser.add_argument("--seq", type=int, help="sequential requests per path and kind")
    parser.add_argument("--wrk-s", type=int, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, help="interleaved wrk rounds")
    parser.add_argument("--streams", type=int, help="concurrent slow streams")
    parser.add_argument("--conns", type=int, default=32, help="wrk connections")
    parser.add_argument("--rev", help="measure this commit's src/ (git archive) instead of the working tree")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE", help="extra gateway env")
    parser.add_argument(
        "--baseline",
        metavar="COMMIT",
        help="also measure this commit's src/ as a second 1-worker gateway in the same run (before/after rows)",
    )
    args = parser.parse_args(argv)
    seq, seq_cap, wrk_s, rounds, warm, streams, litellm = MODES["quick" if args.quick else "full"]
    args.mode = "quick" if args.quick else "full"
    args.seq, args.wrk_s = args.seq or seq, args.wrk_s or wrk_s
    args.rounds, args.streams = args.rounds or rounds, args.streams if args.streams is not None else streams
    args.seq_cap, args.warm = seq_cap, warm
    args.litellm = litellm if args.litellm is None else args.litellm
    return args


def cpu_plan() -> dict[str, str | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        only = str(cpus[0])
        return {"gateway": only, "gateway2": only, "load": only}
    return {"gateway": str(cpus[0]), "gateway2": f"{cpus[0]},{cpus[1]}", "load": str(cpus[1])}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [tool for tool in ("wrk", "nginx", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install -y wrk nginx util-linux", file=sys.stderr)
        return 2
    if not gateway.POLYROUTE.exists():
        print(f"missing {gateway.POLYROUTE}: run `make run` or `make test` once", file=sys.stderr)
        return 2
    cpus = cpu_plan()
    os.sched_setaffinity(0, {int(cpus["load"] or 0)})  # this driver is a client: keep it off the gateway core
    root = Path(tempfile.mkdtemp(prefix="polyroute-perf."))
    procs = Processes(root)
    suffixes = ("", "_2w", "_baseline") if args.db == "postgres" else ()
    databases = [PostgresDatabase(args.pg_server, suffix) for suffix in suffixes]
    results: Json = {"meta": meta(args, cpus)}
    status = 0
    try:
        measure(args, cpus, root, procs, databases, results)
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        return 130
    except Exception as error:  # report what was measured, and why the rest was not
        say(f"FAILED: {type(error).__name__}: {error}\n{traceback.format_exc(limit=4)}")
        first_line = (str(error).splitlines() or [""])[0]
        results["meta"]["notes"].append(f"run failed: {type(error).__name__}: {first_line}")
        status = 1
    finally:
        procs.stop_all()
        for database in databases:
            with contextlib.suppress(Exception):
                database.drop()
        shutil.rmtree(root, ignore_errors=True)
    results["meta"]["load_end"] = _loadavg()
    results["meta"]["elapsed_s"] = round(time.monotonic() - STARTED, 1)
    write(args, results)
    return status


def meta(args: argparse.Namespace, cpus: dict[str, str | None]) -> Json:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.machine(),
    )
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": gateway.version_note(),
        "mode": args.mode,
        "db": "PostgreSQL" if args.db == "postgres" else "SQLite",
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "load_start": _loadavg(),
        "gateway_cpus": cpus["gateway"],
        "gateway2_cpus": cpus["gateway2"],
        "load_cpus": cpus["load"],
        "conns": args.conns,
        "rounds": args.rounds,
        "wrk_s": args.wrk_s,
        "litellm": args.litellm,
        "bare": args.bare,
        "features": {},
        "credits": "none",
        "notes": [] if cpus["gateway"] != cpus["load"] else ["fewer than 2 CPUs: nothing is isolated"],
    }


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(
    args: argparse.Namespace,
    cpus: dict[str, str | None],
    root: Path,
    procs: Processes,
    databases: list[PostgresDatabase],
    results: Json,
) -> None:
    info = results["meta"]
    bodies = mock_upstream.write_bodies(root)
    nginx, nginx_port = mock_upstream.start_nginx(procs, root, cpus["load"])
    drip_port = free_port()
    drip = procs.start("drip", [sys.executable, str(HERE / "drip.py"), str(drip_port), "0.5", "120"], cpus=cpus["load"])
    wait_for_port(drip_port, drip, 10)
    say(f"nginx on :{nginx_port}, drip on :{drip_port}")

    extra_env = gateway.parse_env_pairs(args.gateway_env)
    if args.rev:
        short, src = gateway.export_src(args.rev, root / "rev")
        extra_env["PYTHONPATH"] = str(src)
        info["commit"] = f"{short} (src/ from git, not the working tree)"
    database_url = databases[0].create() if databases else None
    setup = gateway.prepare(root, nginx_port, drip_port, database_url, extra_env)
    info["credits"] = setup.credits
    info["notes"] += setup.notes
    gw1, port1 = gateway.launch(procs, setup, "polyroute-1w", cpus["gateway"], 1)
    # Each gateway has its own database (and key): a SQLite file shared by two gateways mixes their
    # WALs and checkpoints into each other's figures.
    (root / "two-workers").mkdir()
    setup2 = gateway.prepare(
        root / "two-workers", nginx_port, drip_port, databases[1].create() if databases else None, extra_env
    )
    gw2, port2 = gateway.launch(procs, setup2, "polyroute-2w", cpus["gateway2"], 2)
    base: tuple[Proc, int] | None = None
    base_setup = setup
    if args.baseline:  # the same config, another commit's src/, with its own database made by its own code
        # (an older build cannot start on a newer migration head)
        short, src = gateway.export_src(args.baseline, root / "baseline")
        info["baseline"] = short
        base_root = root / "baseline-gateway"
        base_root.mkdir()
        base_env = {**extra_env, "PYTHONPATH": str(src)}
        base_url = databases[2].create() if databases else None
        base_setup = gateway.prepare(base_root, nginx_port, drip_port, base_url, base_env)
        base = gateway.launch(procs, base_setup, "baseline-1w", cpus["gateway"], 1)
    gateway.wait_ready(gw1, port1)
    gateway.wait_ready(gw2, port2)
    if base is not None:
        gateway.wait_ready(*base)
    features, generation_id = gateway.probe_features(port1, setup.key, bodies["json"].read_bytes())
    info["features"] = features
    say(f"polyroute 1 worker on :{port1}, 2 workers on :{port2}; key created, credits: {setup.credits}")

    targets = [
        load.Target("direct", nginx_port, "/v1/chat/completions", "/sse/v1/chat/completions", None, nginx.pid),
        load.Target("polyroute_1w", port1, "/api/v1/chat/completions", "/api/v1/chat/completions", setup.key, gw1.pid),
        load.Target("polyroute_2w", port2, "/api/v1/chat/completions", "/api/v1/chat/completions", setup2.key, gw2.pid),
    ]
    if base is not None:
        chat = "/api/v1/chat/completions"
        targets.insert(2, load.Target("baseline_1w", base[1], chat, chat, base_setup.key, base[0].pid))
    bare = start_bare_relay(cpus, procs, nginx_port, bodies, info) if args.bare else None
    if bare is not None:
        targets.insert(1, bare[1])
    lite = start_litellm(cpus, root, procs, nginx_port, bodies, info) if args.litellm else None
    if lite is not None:
        targets.append(lite[1])

    base_target = (base[1], base_setup.key) if base else None
    results["sequential"] = sequential(args, nginx_port, port1, setup.key, bodies, base_target)
    say("throughput (wrk)")
    results["throughput"] = load.measure(
        targets, bodies, seconds=args.wrk_s, rounds=args.rounds, warm_s=args.warm, conns=args.conns,
        cpus=cpus["load"], say=say,
    )  # fmt: skip
    mem = results["memory"] = {
        "rss_1w_mb": [round(v, 1) for v in gateway.worker_rss_mb(gw1)],
        "rss_2w_mb": [round(v, 1) for v in gateway.worker_rss_mb(gw2)],
    }
    if lite is not None:
        mem["litellm_mb"] = round(sum(rss_mb(pid) for pid in group_members(lite[0].pid)), 1)
        procs.stop(lite[0])
    if bare is not None:
        mem["bare_relay_mb"] = round(rss_mb(bare[0].pid), 1)
        procs.stop(bare[0])
    procs.stop(gw2)
    if base is not None:
        mem["rss_baseline_mb"] = [round(v, 1) for v in gateway.worker_rss_mb(base[0])]
        procs.stop(base[0])  # before the slow streams: they measure the 1-worker gateway alone
    if args.streams:
        say(f"{args.streams} concurrent slow streams through the 1-worker gateway")
        mem["streams"] = memory.hold_streams(
            procs, gw1, port1, drip_port, bodies["slow"], setup.key, args.streams, cpus["load"], 60
        )
    gateway.confirm_records(port1, setup.key, generation_id, info["features"])


def start_bare_relay(
    cpus: dict[str, str | None], procs: Processes, nginx_port: int, bodies: dict[str, Path], info: Json
) -> tuple[Proc, load.Target] | None:
    """Start bench/stack's relay with no features; None (with a note in the report) when it cannot run."""
    return _start_reference(
        "bare_relay",
        "bare Python relay",
        procs,
        info,
        lambda: bare_relay.start(procs, nginx_port, cpus["gateway"]),
        lambda port: bare_relay.check(port, bodies["json"].read_bytes(), bodies["sse"].read_bytes()),
        "/api/v1/chat/completions",
        None,
    )


def start_litellm(
    cpus: dict[str, str | None], root: Path, procs: Processes, nginx_port: int, bodies: dict[str, Path], info: Json
) -> tuple[Proc, load.Target] | None:
    """Install (or reuse) and start LiteLLM's proxy; None (with a note in the report) when it cannot run."""

    def start() -> tuple[Proc, int]:
        say(f"LiteLLM venv: {litellm_proxy.VENV} ({litellm_proxy.LITELLM_SPEC})")
        info["litellm_version"] = litellm_proxy.ensure_venv(root / "litellm-pip.log").split("==")[-1]
        say("starting LiteLLM proxy")
        return litellm_proxy.start(procs, root, nginx_port, cpus["gateway"])

    return _start_reference(
        "litellm",
        "LiteLLM",
        procs,
        info,
        start,
        lambda port: litellm_proxy.check(port, bodies["json"].read_bytes(), bodies["sse"].read_bytes()),
        "/v1/chat/completions",
        litellm_proxy.MASTER_KEY,
    )


def _start_reference(
    name: str,
    label: str,
    procs: Processes,
    info: Json,
    start: Callable[[], tuple[Proc, int]],
    check: Callable[[int], str],
    path: str,
    auth: str | None,
) -> tuple[Proc, load.Target] | None:
    """Start a reference target and check one answer of each kind; a problem goes to `info[name + "_problem"]`."""
    try:
        proc, port = start()
        verdict = check(port)
    except (RuntimeError, OSError) as error:
        info[f"{name}_problem"] = (str(error).splitlines() or [type(error).__name__])[0]
        return None
    if verdict != "ok":
        info[f"{name}_problem"] = verdict
        procs.stop(proc)
        return None
    say(f"{label} on :{port}")
    return proc, load.Target(name, port, path, path, auth, proc.pid)


def sequential(
    args: argparse.Namespace,
    nginx_port: int,
    gw_port: int,
    key: str,
    bodies: dict[str, Path],
    base: tuple[int, str] | None,  # the baseline gateway's port and key
) -> Json:
    say(f"sequential: {args.seq} requests per path and kind, 1 connection")
    json_body, sse_body = bodies["json"].read_bytes(), bodies["sse"].read_bytes()
    gw = "/api/v1/chat/completions"
    conns = {
        "direct_json": seq_latency.Connection(nginx_port, "/v1/chat/completions", json_body, None),
        "polyroute_json": seq_latency.Connection(gw_port, gw, json_body, key),
        "direct_sse": seq_latency.Connection(nginx_port, "/sse/v1/chat/completions", sse_body, None),
        "polyroute_sse": seq_latency.Connection(gw_port, gw, sse_body, key),
    }
    paths = ["direct", "polyroute"]
    if base is not None:
        conns["baseline_json"] = seq_latency.Connection(base[0], gw, json_body, base[1])
        conns["baseline_sse"] = seq_latency.Connection(base[0], gw, sse_body, base[1])
        paths.append("baseline")
    samples = seq_latency.measure(conns, args.seq, max_s=args.seq_cap)
    pct = seq_latency.percentile_ms
    out: Json = {"count": len(samples["polyroute_json"].total_ns)}
    for path in paths:
        j, s = samples[f"{path}_json"], samples[f"{path}_sse"]
        out[path] = {
            "json_p50_ms": pct(j.total_ns, 50),
            "json_p99_ms": pct(j.total_ns, 99),
            "sse_p50_ms": pct(s.total_ns, 50),
            "sse_p99_ms": pct(s.total_ns, 99),
            "ttft_p50_ms": pct(s.ttft_ns, 50),
            "ttft_p99_ms": pct(s.ttft_ns, 99),
            "errors": j.errors + s.errors,
        }
    d, p = out["direct"], out["polyroute"]
    out["added"] = {k: None if p[k] is None or d[k] is None else p[k] - d[k] for k in d if k != "errors"}
    if base is not None:
        b = out["baseline"]
        out["baseline_added"] = {k: None if b[k] is None or d[k] is None else b[k] - d[k] for k in d if k != "errors"}
    return out


def write(args: argparse.Namespace, results: Json) -> None:
    text = report.markdown(results)
    out = args.out
    if out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
        out = HERE / "results" / f"{stamp}-{args.mode}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    json_path = args.json or out.with_suffix(".json")
    results["targets"] = report.targets(results)
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(text)
    say(f"report written to {out} and {json_path}")


if __name__ == "__main__":
    sys.exit(main())
