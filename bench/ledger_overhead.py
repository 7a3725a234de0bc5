"""What the credit ledger costs per request: latency and throughput of a gateway with it and without it.

    .venv/bin/python bench/ledger_overhead.py --before /tmp/polyroute-before/src [--rounds 3]

`--before` points at the `src` directory of a checkout without the ledger (e.g.
`git worktree add /tmp/polyroute-before 7dd0f36`); the current tree is "after". Each round starts both
gateways on SQLite and on PostgreSQL (127.0.0.1:5432, trust auth), against the fake OpenAI upstream
(`acme/mock-model`, non-streamed), and measures: sequential latency (p50/p99 of 300 requests) and
throughput at 32 concurrent requests (1,500 requests). Rounds interleave before/after so machine drift
hits both alike; the best round per cell is reported, with the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.fakes.openai_upstream import FakeOpenAIUpstream  # noqa: E402
from tests.support.gateway import UPSTREAM_KEY_ENV, acme_config_toml, clean_env, free_port  # noqa: E402

BODY = {"model": "acme/mock-model", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20}


def start_gateway(src: Path, workdir: Path, upstream: FakeOpenAIUpstream, database_url: str | None) -> tuple:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "polyroute.toml").write_text(acme_config_toml(upstream.base_url))
    env = clean_env({"POLYROUTE_DATA_DIR": str(workdir / "data"), UPSTREAM_KEY_ENV: upstream.api_key})
    env["PYTHONPATH"] = str(src)
    env["POLYROUTE_LOG_LEVEL"] = "WARNING"
    if database_url:
        env["POLYROUTE_DATABASE_URL"] = database_url
    port = free_port()
    config = str(workdir / "polyroute.toml")
    command = [sys.executable, "-m", "polyroute", "serve", "--port", str(port), "--config", config]
    process = subprocess.Popen(command, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    key_command = [sys.executable, "-m", "polyroute", "keys", "create", "--name", "b", "--account", "b@example.com"]
    if "--credits" in subprocess.run([*key_command[:5], "--help"], env=env, capture_output=True, text=True).stdout:
        key_command += ["--credits", "1000"]
    deadline = time.monotonic() + 30
    import urllib.request

    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    key = subprocess.run(key_command, env=env, cwd=workdir, capture_output=True, text=True, check=True).stdout.strip()
    return process, f"http://127.0.0.1:{port}/api/v1/chat/completions", key


async def measure(url: str, key: str) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=64)) as session:

        async def one() -> float:
            started = time.perf_counter()
            async with session.post(url, json=BODY) as response:
                await response.read()
                assert response.status == 200, response.status
            return time.perf_counter() - started

        for _ in range(30):
            await one()  # warm-up
        latencies = sorted([await one() for _ in range(300)])
        started = time.perf_counter()
        queue = list(range(1_500))

        async def worker() -> None:
            while queue:
                queue.pop()
                await one()

        await asyncio.gather(*(worker() for _ in range(32)))
        elapsed = time.perf_counter() - started
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "rps_32": 1_500 / elapsed,
    }


async def fresh_pg() -> str:
    import asyncpg  # type: ignore[import-untyped]

    name = f"polyroute_bench_{os.getpid()}_{time.time_ns()}"
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


async def drop_pg(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True, help="src dir of a checkout without the ledger")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with FakeOpenAIUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            order = [("before", args.before), ("after", REPO / "src")]
            if round_index % 2:
                order.reverse()
            for engine in ("sqlite", "postgres"):
                for label, src in order:
                    url = asyncio.run(fresh_pg()) if engine == "postgres" else None
                    workdir = Path(tmp) / f"{label}-{engine}-{round_index}"
                    process, endpoint, key = start_gateway(src, workdir, upstream, url)
                    try:
                        results.setdefault((engine, label), []).append(asyncio.run(measure(endpoint, key)))
                    finally:
                        process.terminate()
                        process.wait(20)
                        if url:
                            asyncio.run(drop_pg(url))
    print("| engine | build | p50 ms (best) | p99 ms (best) | req/s at 32 (best) | req/s spread |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (engine, label), runs in sorted(results.items()):
        rps = [run["rps_32"] for run in runs]
        print(
            f"| {engine} | {label} | {min(r['p50_ms'] for r in runs):.2f} | {min(r['p99_ms'] for r in runs):.2f} "
            f"| {max(rps):.0f} | {min(rps):.0f}-{max(rps):.0f} |"
        )


if __name__ == "__main__":
    main()
