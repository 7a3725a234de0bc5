"""Local model throughput through the gateway vs llama-cpp-python called directly.

Same model file, same prompt, same n_ctx and thread count, temperature 0 and a fixed token
budget; tokens/s is measured from the first token to the last (time to first token reported
separately). Also measures how long `GET /models` and a chat to a fake remote upstream take
while a long local generation streams.

Run: .venv/bin/python bench/local_tokens.py [--tokens 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import openai
import requests
from llama_cpp import Llama

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.openai_upstream import FakeOpenAIUpstream  # noqa: E402
from tests.support.gateway import UPSTREAM_KEY_ENV, GatewayProcess, acme_config_toml  # noqa: E402

from polyroute.providers.local.packaged import PACKAGED_MODELS, packaged_path  # noqa: E402

MODEL_ID = "google/gemma-3-270m"  # a base model: it runs to the token budget, so runs are comparable
MESSAGES = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


PROMPT = "<start_of_turn>user\n" + MESSAGES[0]["content"] + "<end_of_turn>\n<start_of_turn>model\n"


def direct_llm() -> Llama:
    path = str(packaged_path(PACKAGED_MODELS["gemma-3-270m"]))
    return Llama(model_path=path, n_ctx=4096, verbose=False)  # same defaults as the gateway (n_threads too)


def direct_rate(llm: Llama, tokens: int) -> float:
    """llama-cpp-python's high-level streaming completion, as most code calls it."""
    first, count = None, 0
    for _ in llm.create_completion(PROMPT, max_tokens=tokens, temperature=0, stream=True):
        count += 1
        if first is None:
            first = time.perf_counter()
    assert first is not None
    return (count - 1) / (time.perf_counter() - first)


def direct_raw_rate(llm: Llama, tokens: int) -> float:
    """The bare token loop (`Llama.generate` + detokenize), the least a caller can do."""
    prompt = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
    first, count = None, 0
    for token in llm.generate(prompt, temp=0, top_k=40, top_p=0.95, repeat_penalty=1.0, reset=True):
        llm.detokenize([token])
        count += 1
        if first is None:
            first = time.perf_counter()
        if count >= tokens:
            break
    assert first is not None
    return (count - 1) / (time.perf_counter() - first)


def gateway_rate(client: openai.OpenAI, tokens: int) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = None
    pieces = 0
    usage = None
    stream = client.chat.completions.create(
        model=MODEL_ID, messages=MESSAGES, max_tokens=tokens, temperature=0, stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces += 1
            if first is None:
                first = time.perf_counter()
        if chunk.usage:
            usage = chunk.usage
    end = time.perf_counter()
    assert first is not None and usage is not None
    return (usage.completion_tokens - 1) / (end - first), first - started, usage.completion_tokens


def side_latency(gateway: GatewayProcess, client: openai.OpenAI, tokens: int) -> dict[str, float]:
    """Latency of /models and a remote chat while a long local generation streams."""
    done = threading.Event()

    def long_run() -> None:
        gateway_rate(client, tokens)
        done.set()

    thread = threading.Thread(target=long_run)
    thread.start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    requests.get(f"{gateway.base_url}/models", timeout=30).raise_for_status()
    models_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    client.chat.completions.create(model="acme/mock-model", messages=[{"role": "user", "content": "hi"}])
    remote_ms = (time.perf_counter() - t0) * 1000
    still_running = not done.is_set()
    thread.join()
    return {"models_ms": models_ms, "remote_chat_ms": remote_ms, "local_still_running": float(still_running)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIUpstream() as fake:
        config = acme_config_toml(fake.base_url)
        with GatewayProcess(Path(tmp), config, {UPSTREAM_KEY_ENV: fake.api_key}) as gateway:
            key = gateway.create_key(name="bench", account="bench@example.com")["key"]
            client = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=300)
            gateway_rate(client, 16)  # load the model
            llm = direct_llm()
            direct_rates, raw_rates, gateway_rates = [], [], []
            for _ in range(args.rounds):  # interleaved, so machine noise hits all alike
                direct_rates.append(direct_rate(llm, args.tokens))
                raw_rates.append(direct_raw_rate(llm, args.tokens))
                rate, _ttft, produced = gateway_rate(client, args.tokens)
                gateway_rates.append(rate)
            side = side_latency(gateway, client, args.tokens * 2)
    d, r, g = (statistics.median(x) for x in (direct_rates, raw_rates, gateway_rates))
    print(f"model {MODEL_ID}, {args.tokens} tokens, median of {args.rounds} interleaved rounds")
    print("| path | tokens/s | gateway / this |\n|---|---:|---:|")
    print(f"| llama-cpp-python `create_completion(stream=True)` | {d:.1f} | {g / d:.3f} |")
    print(f"| llama-cpp-python bare `generate` loop | {r:.1f} | {g / r:.3f} |")
    print(f"| through the gateway (SSE, openai SDK) | {g:.1f} | 1.000 |")
    print(f"(last gateway run produced {produced} tokens)")
    print(
        f"while a local generation streams: GET /models {side['models_ms']:.1f} ms, "
        f"remote chat {side['remote_chat_ms']:.1f} ms, "
        f"remote chat {side['remote_chat_ms']:.1f} ms, "
        f"local still running after both: {bool(side['local_still_running'])}"
    )


if __name__ == "__main__":
    main()
