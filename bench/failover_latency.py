"""Added latency of a failover: time to the first token through the real gateway, direct vs after a
failing cheaper endpoint (503 before any content, and a preamble followed by an error).

    .venv/bin/python bench/failover_latency.py [--requests 50]

Each request uses a fresh model whose cheap endpoint fails, so health tracking never skips it: every
measured request really pays for one failed attempt. Prints p50/p90 of TTFT per scenario and the
difference to the direct path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.fakes.openai_upstream import FakeOpenAIUpstream  # noqa: E402
from tests.support.gateway import UPSTREAM_KEY_ENV, GatewayProcess, _model_toml, acme_config_toml  # noqa: E402

SCENARIOS = {"direct": None, "after 503": "error-503", "after preamble+500": "preamble-then-500"}


def _config(base_url: str, count: int) -> str:
    models = []
    for name, failing in SCENARIOS.items():
        for i in range(count):
            endpoints = [("acme", "mock-model", "0.50", "1.50")]
            if failing:
                endpoints.insert(0, ("acme-bad", failing, "0.10", "0.30"))
            models.append(_model_toml(f"bench/{name.replace(' ', '-').replace('+', '')}-{i}", endpoints))
    return acme_config_toml(base_url, extra_toml="".join(models))


def _ttft_ms(session: requests.Session, url: str, key: str, model: str) -> float:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    started = time.perf_counter()
    with session.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, stream=True, timeout=60) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data: ") and '"content":"' in line.replace(" ", "") and '"content":""' not in line:
                return (time.perf_counter() - started) * 1000
    raise RuntimeError(f"no content from {model}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with FakeOpenAIUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        env = {UPSTREAM_KEY_ENV: upstream.api_key}
        with GatewayProcess(Path(tmp), _config(upstream.base_url, args.requests), env) as gateway:
            key = gateway.create_key()["key"]
            url = f"{gateway.base_url}/chat/completions"
            session = requests.Session()
            results: dict[str, list[float]] = {}
            for name in SCENARIOS:
                slug = name.replace(" ", "-").replace("+", "")
                _ttft_ms(session, url, key, f"bench/{slug}-0")  # warm-up
                results[name] = [_ttft_ms(session, url, key, f"bench/{slug}-{i}") for i in range(1, args.requests)]
    direct = statistics.median(results["direct"])
    print(f"{'scenario':<22}{'p50 ms':>9}{'p90 ms':>9}{'added p50 ms':>14}")
    for name, samples in results.items():
        p50 = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:<22}{p50:>9.1f}{p90:>9.1f}{p50 - direct:>14.1f}")


if __name__ == "__main__":
    main()
