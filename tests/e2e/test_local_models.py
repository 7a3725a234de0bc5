"""Embedded local models: a gateway with no provider keys answers real chats offline."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import openai
import pytest
import requests
from llama_cpp import Llama
from tests.support.gateway import acme_config_toml

from polyroute.providers.local.packaged import PACKAGED_MODELS, packaged_path

SMOL = "huggingfacetb/smollm2-135m-instruct"
GEMMA = "google/gemma-3-270m"
QUESTION = [{"role": "user", "content": "What is the capital of China?"}]


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    return packaged_path(PACKAGED_MODELS["smollm2-135m-instruct"])


@pytest.fixture(scope="module")
def gateway_config(fake_upstream, smollm2_path):
    # The fake remote upstream too (for the "served while a local generation runs" test), and the
    # packaged SmolLM2 file added again by path, as an operator would add any GGUF file.
    extra = f"""
[providers.local]
options = {{ max_queue = "2" }}

[[models]]
id = "acme/my-gguf"
name = "Acme: my GGUF"
context_length = 4096
[[models.endpoints]]
provider = "local"
upstream_id = "my-gguf"
path = "{smollm2_path}"
prompt_price = "0"
completion_price = "0"
"""
    return acme_config_toml(fake_upstream.base_url, extra_toml=extra)


@pytest.fixture(scope="module", params=["sqlite"])
def database_kind(request):
    return request.param  # the models are the point here, not the database (covered elsewhere)


def client_for(gateway, api_key):
    return openai.OpenAI(base_url=gateway.base_url, api_key=api_key, max_retries=0, timeout=120)


def test_quickstart_answers_with_a_real_model(gateway, api_key):
    reply = client_for(gateway, api_key).chat.completions.create(
        model=SMOL, messages=QUESTION, max_tokens=40, temperature=0
    )
    assert "beijing" in (reply.choices[0].message.content or "").lower()
    assert reply.model == SMOL and (reply.model_extra or {})["provider"] == "Local (llama.cpp)"
    assert reply.usage is not None and (reply.usage.model_extra or {})["cost"] == 0


def test_usage_matches_the_models_own_tokenizer(gateway, api_key, smollm2_path):
    stream = client_for(gateway, api_key).chat.completions.create(
        model=SMOL, messages=QUESTION, max_tokens=30, temperature=0, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert text and usage is not None
    direct = Llama(model_path=str(smollm2_path), n_ctx=4096, verbose=False)
    # Prompt: llama-cpp-python's own chat handler counts the same templated prompt.
    reference = direct.create_chat_completion(messages=QUESTION, max_tokens=1, temperature=0)
    assert usage.prompt_tokens == reference["usage"]["prompt_tokens"]
    assert usage.completion_tokens == len(direct.tokenize(text.encode(), add_bos=False, special=False))


def test_free_variant_default_model_and_gemma(gateway, api_key):
    client = client_for(gateway, api_key)
    free = client.chat.completions.create(model=f"{SMOL}:free", messages=QUESTION, max_tokens=5)
    assert free.model == SMOL
    default = requests.post(
        f"{gateway.base_url}/chat/completions",
        json={"messages": QUESTION, "max_tokens": 5},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=120,
    ).json()
    assert default["model"] == SMOL
    gemma = client.chat.completions.create(model=GEMMA, messages=QUESTION, max_tokens=8, stop=["\n\n"])
    assert gemma.choices[0].finish_reason in ("stop", "length") and gemma.usage.completion_tokens <= 8


def test_stop_sequences_and_length_finish(gateway, api_key):
    client = client_for(gateway, api_key)
    capped = client.chat.completions.create(model=SMOL, messages=QUESTION, max_tokens=3, temperature=0)
    assert capped.choices[0].finish_reason == "length" and capped.usage.completion_tokens == 3
    cut = client.chat.completions.create(model=SMOL, messages=QUESTION, max_tokens=40, temperature=0, stop=["Beijing"])
    assert "Beijing" not in (cut.choices[0].message.content or "")
    assert cut.choices[0].finish_reason == "stop"


def test_an_operator_gguf_file_is_served_by_path(gateway, api_key):
    reply = client_for(gateway, api_key).chat.completions.create(
        model="acme/my-gguf", messages=QUESTION, max_tokens=20, temperature=0
    )
    assert "beijing" in (reply.choices[0].message.content or "").lower()


def test_other_requests_are_served_while_a_long_local_generation_streams(gateway, api_key):
    client = client_for(gateway, api_key)
    finished: dict[str, float] = {}

    def long_generation():
        stream = client.chat.completions.create(
            model=GEMMA,  # a base model: it runs to max_tokens rather than stopping early
            messages=[{"role": "user", "content": "Write a very long story about a dragon."}],
            max_tokens=600,
            temperature=0.8,
            seed=1,
            stream=True,
        )
        for _ in stream:
            pass
        finished["local"] = time.monotonic()

    worker = threading.Thread(target=long_generation)
    worker.start()
    time.sleep(1.0)  # the generation is under way
    models = requests.get(f"{gateway.base_url}/models", timeout=30)
    finished["models"] = time.monotonic()
    remote = client.chat.completions.create(model="acme/mock-model", messages=QUESTION)
    finished["remote"] = time.monotonic()
    worker.join(timeout=300)
    assert models.status_code == 200 and remote.choices[0].message.content
    assert finished["models"] < finished["local"] and finished["remote"] < finished["local"]


def test_a_full_queue_gets_429_and_a_disconnect_frees_the_model(gateway, api_key):
    client = client_for(gateway, api_key)
    # Gemma 3 270M is a base model: it rarely stops on its own, so these generations run to max_tokens.
    long = {"model": GEMMA, "messages": [{"role": "user", "content": "Tell a long tale."}], "max_tokens": 800}
    running = client.chat.completions.create(**long, stream=True)
    next(iter(running))  # generating now
    # Waits behind the first in the model's queue; its response starts with keep-alive comments.
    waiting = client.chat.completions.create(**long, stream=True)
    streams = [running, waiting]  # max_queue = 2: the model is full
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**long)
    for stream in streams:
        stream.close()  # client disconnects: generation stops at the next token
    started = time.monotonic()
    reply = None
    while reply is None and time.monotonic() - started < 15:
        try:  # the server notices the disconnects within moments; until then the queue may still be full
            reply = client.chat.completions.create(model=GEMMA, messages=QUESTION, max_tokens=5)
        except openai.RateLimitError:
            time.sleep(0.2)
    assert reply is not None and reply.choices[0].message.content is not None
    # At ~40 tokens/s the abandoned 2 x 800 tokens would hold the model for ~40 s.
    assert time.monotonic() - started < 15


def test_fresh_install_without_keys_or_config_answers(tmp_path):
    from tests.support.gateway import GatewayProcess

    with GatewayProcess(tmp_path / "fresh", "", {}) as gateway:
        ids = [m["id"] for m in requests.get(f"{gateway.base_url}/models", timeout=30).json()["data"]]
        assert SMOL in ids and GEMMA in ids
        key = gateway.create_key(name="fresh", account="new@example.com")["key"]
        reply = client_for(gateway, key).chat.completions.create(model=SMOL, messages=QUESTION, max_tokens=40)
        assert "beijing" in (reply.choices[0].message.content or "").lower()
