"""Turn the @@RESULT / @@JSON / @@CHECK lines collected by run.sh into markdown tables.

usage: report.py RESULTS_FILE
"""

from __future__ import annotations

import json
import sys

CANDIDATES = {
    "ceiling": "nginx direct (ceiling, no relay)",
    "a": "(a) Starlette + uvicorn + aiohttp + msgspec",
    "a2": "(a2) = (a), SSE via lean ASGI response",
    "b": "(b) Starlette + uvicorn + httpx 0.28 + msgspec",
    "b2": "(b2) Starlette + uvicorn + httpx2 + msgspec",
    "c": "(c) raw ASGI + uvicorn + aiohttp + msgspec",
    "d": "(d) Starlette + granian + aiohttp + msgspec",
    "d2": "(d2) raw ASGI + granian + aiohttp + msgspec",
}


def main() -> None:
    runs: dict[tuple[str, str], list[dict]] = {}
    jsons: list[dict] = []
    checks: dict[str, str] = {}
    with open(sys.argv[1]) as f:
        lines = f.readlines()
    for line in lines:
        if line.startswith("@@RESULT "):
            r = json.loads(line[9:])
            cand, mode, _round = r["label"].split(":")
            runs.setdefault((cand, mode), []).append(r)
        elif line.startswith("@@JSON "):
            jsons.append(json.loads(line[7:]))
        elif line.startswith("@@CHECK "):
            cand, _, msg = line[8:].strip().partition(" ")
            checks[cand] = msg

    def best(cand: str, mode: str) -> tuple[dict, float] | None:
        """Best round by req/s (noise only ever lowers throughput) and the spread across rounds."""
        rs = runs.get((cand, mode))
        if not rs:
            return None
        top = max(rs, key=lambda r: r["rps"])
        spread = (top["rps"] - min(r["rps"] for r in rs)) / top["rps"]
        return top, spread

    print("| stack | non-stream req/s | p50 ms | p99 ms | vs (a) | stream req/s | p50 ms | p99 ms | vs (a) | check |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for cand, name in CANDIDATES.items():
        if cand not in checks and not any(k[0] == cand for k in runs):
            continue
        cells = [name]
        for mode in ("json", "sse"):
            b, base = best(cand, mode), best("a", mode)
            if b is None:
                cells += ["-", "-", "-", "-"]
                continue
            r, spread = b
            errs = sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
            rps = f"{r['rps']:,.0f}"
            if len(runs[(cand, mode)]) > 1:
                rps += f" ±{spread * 50:.0f}%"  # half the max-min range across rounds
            if errs:
                rps += f" ({errs} err)"
            rel = f"{r['rps'] / base[0]['rps']:.2f}x" if base and cand != "ceiling" else "-"
            cells += [rps, f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", rel]
        cells.append(checks.get(cand, "-"))
        print("| " + " | ".join(cells) + " |")
    print()
    print("req/s = best of the interleaved rounds (± = half the spread across rounds); latencies from that round.")

    if jsons:
        print()
        print("JSON parse+rewrite+encode, µs per op (best of 5, lower is better):")
        print()
        print("| library | request (280 B) | response (~690 B) | stream (21 chunks) | stream vs msgspec |")
        print("|---|---:|---:|---:|---:|")
        ref = next((j for j in jsons if j["lib"] == "msgspec"), jsons[0])
        for j in jsons:
            print(
                f"| {j['lib']} | {j['request_us']:.2f} | {j['response_us']:.2f} | {j['stream_us']:.1f} "
                f"| {j['stream_us'] / ref['stream_us']:.2f}x |"
            )


if __name__ == "__main__":
    main()
