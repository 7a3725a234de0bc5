"""Turn one run's results (a JSON-able dict) into the markdown report and the issue #9 target check."""

from __future__ import annotations

from typing import Any

R = dict[str, Any]
NONE = "-"
SEQ_COLUMNS = ("json_p50_ms", "json_p99_ms", "ttft_p50_ms", "ttft_p99_ms", "sse_p50_ms", "sse_p99_ms")


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return NONE if value is None else fmt.format(value)


def _rps(cell: R | None) -> str:
    if not cell:
        return NONE
    text = f"{cell['rps']:,.0f}"
    if cell.get("rounds", 1) > 1:
        text += f" ±{cell['spread'] * 50:.0f}%"
    return text


def _cpu(cell: R) -> str:
    if cell.get("cpu_ms_per_req") is None:
        return NONE
    return f"{cell['cpu_ms_per_req']:.3f} ({cell['cpu_cores']:.2f})"


def ratio(a: R | None, b: R | None) -> float | None:
    """Throughput of cell a over cell b (None when either is missing)."""
    if not a or not b or not b.get("rps"):
        return None
    return float(a["rps"]) / float(b["rps"])


def targets(res: R) -> list[R]:
    """Each issue #9 target: goal, measured value and whether it is met (met=None: not measured)."""
    tp, mem = res.get("throughput") or {}, res.get("memory") or {}
    added = (res.get("sequential") or {}).get("added") or {}
    one, two, lite = tp.get("polyroute_1w") or {}, tp.get("polyroute_2w") or {}, tp.get("litellm") or {}
    bare = tp.get("bare_relay") or {}
    streams = mem.get("streams") or {}
    worker_rss = (mem.get("rss_1w_mb") or []) + (mem.get("rss_2w_mb") or [])
    all_open = streams and streams.get("open") == streams.get("streams")
    n_streams = streams.get("streams", 1000)
    scaled = "" if n_streams >= 1000 else " (1,000 in the full run)"
    wanted = [
        ("non-stream throughput / LiteLLM's", ">=", 30, ratio(one.get("json"), lite.get("json")), "x"),
        (
            "non-stream throughput (30x LiteLLM is about this here)",
            ">=",
            1600,
            (one.get("json") or {}).get("rps"),
            "req/s",
        ),
        ("moonshot: non-stream throughput / bare relay's", ">=", 0.5, ratio(one.get("json"), bare.get("json")), "x"),
        ("sequential added latency p50", "<=", 0.5, added.get("json_p50_ms"), "ms"),
        ("sequential added latency p99", "<=", 2.0, added.get("json_p99_ms"), "ms"),
        ("stream throughput / LiteLLM's", ">=", 30, ratio(one.get("sse"), lite.get("sse")), "x"),
        ("time-to-first-token overhead p50", "<=", 1.0, added.get("ttft_p50_ms"), "ms"),
        ("2 workers / 1 worker, non-stream", ">=", 1.7, ratio(two.get("json"), one.get("json")), "x"),
        ("RSS per worker, no local models", "<=", 150, max(worker_rss) if worker_rss else None, "MB"),
        (
            f"RSS added by {n_streams:,} slow streams{scaled}",
            "<=",
            50,
            streams.get("rss_added_mb") if all_open else None,
            "MB",
        ),
    ]
    return [_target(name, op, goal, value, unit) for name, op, goal, value, unit in wanted]


def _target(name: str, op: str, goal: float, value: float | None, unit: str) -> R:
    row: R = {"target": name, "goal": f"{op} {goal:g} {unit}", "value": value, "unit": unit, "met": None, "gap": None}
    if value is None:
        return row
    row["met"] = value >= goal if op == ">=" else value <= goal
    if not row["met"]:
        if op == ">=":
            row["gap"] = f"needs {goal / value:.1f}x more" if value > 0 else "nothing measured"
        else:
            row["gap"] = f"{value - goal:,.2f} {unit} over ({value / goal:.1f}x the goal)"
    return row


def markdown(res: R) -> str:
    meta = res["meta"]
    out = [
        f"## polyroute perf: {meta['date']}, commit {meta['commit']}, {meta['mode']} mode, {meta['db']}",
        "",
        f"Machine: {meta['cpus']} CPUs ({meta['cpu_model']}), load average {meta['load_start']} at start, "
        f"{meta.get('load_end', '?')} at end; {meta.get('elapsed_s', '?')} s. Gateway on cpu {meta['gateway_cpus']} "
        f"(2 workers: cpus {meta['gateway2_cpus']}); nginx, wrk, drip server and clients on cpu {meta['load_cpus']}.",
        "",
        "Features: " + "; ".join(f"**{name}** {finding}" for name, finding in meta["features"].items()) + ".",
        f"Credits: {meta['credits']}.",
    ]
    out += [f"Note: {note}" for note in meta.get("notes", [])]
    out += ["", *_sequential(res), "", *_throughput(res), "", *_memory(res), "", *_targets(res)]
    return "\n".join(out) + "\n"


def _sequential(res: R) -> list[str]:
    seq = res.get("sequential") or {}
    lines = [
        f"### Sequential, 1 connection ({seq.get('count', '?')} requests per path and kind, alternating blocks)",
        "",
        "| path | non-stream p50 ms | p99 ms | stream TTFT p50 ms | TTFT p99 ms | stream p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    baseline = res["meta"].get("baseline")
    rows = [("direct", "nginx direct"), ("polyroute", "polyroute, 1 worker")]
    if baseline:
        rows.append(("baseline", f"baseline: polyroute {baseline}, 1 worker"))
    for name, label in rows:
        row = seq.get(name) or {}
        cells = " | ".join(_f(row.get(column), "{:.3f}") for column in SEQ_COLUMNS)
        lines.append(f"| {label} | {cells} | {row.get('errors', NONE)} |")
    added = seq.get("added") or {}
    cells = " | ".join(f"**{_f(added.get(column), '{:.3f}')}**" for column in SEQ_COLUMNS)
    lines.append(f"| **added by polyroute** | {cells} | |")
    if baseline:
        added = seq.get("baseline_added") or {}
        cells = " | ".join(_f(added.get(column), "{:.3f}") for column in SEQ_COLUMNS)
        lines.append(f"| added by the baseline ({baseline}) | {cells} | |")
    return lines


def _throughput(res: R) -> list[str]:
    tp, meta = res.get("throughput") or {}, res["meta"]
    rounds = f"best of {meta['rounds']} interleaved {meta['wrk_s']} s rounds, ± = half the spread"
    lines = [
        f"### Throughput, {meta['conns']} connections (wrk, 1 thread; {rounds})",
        "",
        "| target | non-stream req/s | p50 ms | p99 ms | CPU ms/req (cores) "
        "| stream req/s | p50 ms | p99 ms | CPU ms/req (cores) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "direct": "nginx direct (ceiling)",
        "bare_relay": f"bare Python relay, no features (cpu {meta['gateway_cpus']})",
        "polyroute_1w": f"polyroute, 1 worker (cpu {meta['gateway_cpus']})",
        "baseline_1w": f"baseline: polyroute {meta.get('baseline')}, 1 worker (cpu {meta['gateway_cpus']})",
        "polyroute_2w": f"polyroute, 2 workers (cpus {meta['gateway2_cpus']})",
        "litellm": f"LiteLLM proxy {meta.get('litellm_version', '')}, 1 worker (cpu {meta['gateway_cpus']})",
    }
    for key, label in names.items():
        if key not in tp and not (key == "litellm" and meta.get("litellm")):
            continue
        j, s = (tp.get(key) or {}).get("json") or {}, (tp.get(key) or {}).get("sse") or {}
        errors = j.get("errors", 0) + s.get("errors", 0)
        cells = [f"{_rps(c)} | {_f(c.get('p50_ms'))} | {_f(c.get('p99_ms'))} | {_cpu(c)}" for c in (j, s)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {errors} |")
    one = tp.get("polyroute_1w") or {}
    pairs = (
        ("polyroute / LiteLLM", one, tp.get("litellm") or {}, "{:.2f}x"),
        ("2 workers / 1 worker", tp.get("polyroute_2w") or {}, one, "{:.2f}x"),
        ("polyroute / bare Python relay", one, tp.get("bare_relay") or {}, "{:.2f}x"),
        ("polyroute / nginx direct", one, tp.get("direct") or {}, "{:.4f}x"),
    )
    if tp.get("baseline_1w"):
        pairs += (("polyroute / baseline", one, tp["baseline_1w"], "{:.2f}x"),)
    for label, a, b, fmt in pairs:
        rj, rs = ratio(a.get("json"), b.get("json")), ratio(a.get("sse"), b.get("sse"))
        lines.append(f"| {label} | **{_f(rj, fmt)}** | | | | **{_f(rs, fmt)}** | | | | |")
    lines += [
        "",
        "CPU ms/req: CPU time the target's processes used during the round / requests answered; (cores): that CPU"
        " time / the round's duration. A target well under 1.00 core per worker waited on something other than CPU.",
    ]
    if tp.get("bare_relay"):
        lines += [
            "",
            "Bare Python relay: bench/stack/relay.py as ADR 0001 chose the stack (Starlette routing, lean SSE answer,"
            " uvicorn + uvloop + httptools, aiohttp, msgspec): parses, rewrites and relays, with no key auth, ledger,"
            " records, limits, metrics or access log.",
        ]
    if meta.get("bare_relay_problem"):
        lines += ["", f"Bare relay not measured: {meta['bare_relay_problem']}"]
    if meta.get("litellm_problem"):
        lines += ["", f"LiteLLM not measured: {meta['litellm_problem']}"]
    return lines


def _memory(res: R) -> list[str]:
    mem = res.get("memory") or {}
    streams = mem.get("streams") or {}
    mb = "{:.1f}"

    def each(values: list[float] | None) -> str:
        return " / ".join(mb.format(v) for v in values or []) or NONE

    lines = ["### Memory (VmRSS from /proc, after the load)", "", "| measurement | MB |", "|---|---:|"]
    lines.append(f"| polyroute, 1 worker | {each(mem.get('rss_1w_mb'))} |")
    lines.append(f"| polyroute, 2 workers (each) | {each(mem.get('rss_2w_mb'))} |")
    if mem.get("rss_baseline_mb"):
        lines.append(f"| baseline, 1 worker | {each(mem.get('rss_baseline_mb'))} |")
    if mem.get("bare_relay_mb"):
        lines.append(f"| bare Python relay | {mb.format(mem['bare_relay_mb'])} |")
    if mem.get("litellm_mb"):
        lines.append(f"| LiteLLM proxy, 1 worker (all its processes) | {mb.format(mem['litellm_mb'])} |")
    if streams:
        lines.append(
            f"| {streams['streams']:,} concurrent slow streams, 1 worker: before / peak / **added** | "
            f"{_f(streams.get('rss_before_mb'), mb)} / {_f(streams.get('rss_peak_mb'), mb)} / "
            f"**{_f(streams.get('rss_added_mb'), mb)}** |"
        )
        errors = streams.get("errors") or {}
        lines += [
            "",
            f"Slow streams: {streams.get('open', 0):,} of {streams['streams']:,} open at once after "
            f"{_f(streams.get('open_s'), '{:.1f}')} s; {streams.get('ok', 0):,} ended with `data: [DONE]`"
            + (f"; failures: {errors}" if errors else "")
            + ".",
        ]
    return lines


def _targets(res: R) -> list[str]:
    lines = ["### Targets (issue #9: all features on, one worker on one core)", ""]
    lines += ["| target | goal | measured | status |", "|---|---|---:|---|"]
    for row in targets(res):
        value = row["value"]
        shown = NONE if value is None else f"{value:,.0f}" if row["unit"] == "req/s" else f"{value:,.2f}"
        status = "not measured" if row["met"] is None else "met" if row["met"] else f"**not met**: {row['gap']}"
        lines.append(f"| {row['target']} | {row['goal']} | {shown} {row['unit']} | {status} |")
    return lines
