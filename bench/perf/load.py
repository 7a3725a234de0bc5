"""Closed-loop load with wrk (1 thread, N connections), pinned to the load core; best of interleaved rounds.

Each target is measured for both bodies (non-streaming JSON and SSE) in every round; the order of
targets is reversed every other round so drift from other work on the shared machine hits every
target alike. The report keeps each cell's best round (noise only ever lowers throughput) and the
spread across rounds. The CPU time the target's processes used during each run (from /proc) is
reported per request: unlike req/s, it barely moves when other work shares the machine.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs import cpu_seconds

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent
ERROR_FIELDS = ("err_connect", "err_read", "err_write", "err_status", "err_timeout")


@dataclass
class Target:
    name: str
    port: int
    json_path: str
    sse_path: str
    auth: str | None
    pgid: int | None = None  # process group whose CPU time is charged to this target


def wrk(url: str, body: Path, seconds: int, conns: int, cpus: str | None, auth: str | None, label: str) -> Json | None:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(HERE / "post.lua"), url]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    env = {"BODY_FILE": str(body), "AUTH": auth or "", "LABEL": label, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 30)
    for line in done.stdout.splitlines():
        if line.startswith("@@RESULT "):
            result: Json = json.loads(line[len("@@RESULT ") :])
            result["errors"] = sum(result[name] for name in ERROR_FIELDS)
            return result
    return None


def measure(
    targets: list[Target],
    bodies: dict[str, Path],
    *,
    seconds: int,
    rounds: int,
    warm_s: int,
    conns: int,
    cpus: str | None,
    say: Callable[[str], None] = print,
) -> dict[str, dict[str, Json]]:
    """{target: {"json"|"sse": best result + "spread" + "rounds"}}."""
    for target in (t for t in targets if t.name != "direct"):  # nginx needs no warm-up
        for mode in ("json", "sse"):
            wrk(_url(target, mode), bodies[mode], warm_s, conns, cpus, target.auth, "warm")
    runs: dict[tuple[str, str], list[Json]] = {}
    for round_no in range(rounds):
        order = targets if round_no % 2 == 0 else list(reversed(targets))
        for target in order:
            for mode in ("json", "sse"):
                label = f"{target.name}:{mode}:{round_no + 1}"
                pgid = target.pgid
                cpu_before = cpu_seconds(pgid) if pgid else 0.0
                result = wrk(_url(target, mode), bodies[mode], seconds, conns, cpus, target.auth, label)
                if result is not None:
                    if pgid and result["requests"]:
                        used_s = cpu_seconds(pgid) - cpu_before
                        result["cpu_ms_per_req"] = round(used_s * 1000 / result["requests"], 4)
                        result["cpu_cores"] = round(used_s / (result["duration_us"] / 1e6), 2)
                    runs.setdefault((target.name, mode), []).append(result)
                say(f"  {label:<22} " + (f"{result['rps']:>9,.0f} req/s" if result else "FAILED"))
    best: dict[str, dict[str, Json]] = {}
    for (name, mode), results in runs.items():
        top = max(results, key=lambda r: r["rps"])
        spread = (top["rps"] - min(r["rps"] for r in results)) / top["rps"] if top["rps"] else 0.0
        best.setdefault(name, {})[mode] = {**top, "spread": round(spread, 3), "rounds": len(results)}
    return best


def _url(target: Target, mode: str) -> str:
    return f"http://127.0.0.1:{target.port}{target.json_path if mode == 'json' else target.sse_path}"
