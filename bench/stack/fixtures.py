"""Fixed request/response bodies for the server-stack benchmark.

`python fixtures.py OUTDIR` writes:
  request.json         client -> relay body (non-streaming)
  request_stream.json  client -> relay body with "stream": true
  chat.json            upstream chat completion (~600 bytes), served by nginx
  stream.sse           upstream SSE body: 20 content chunks + usage chunk + [DONE]

The same bodies feed the JSON micro-benchmark (json_bench.py), so every number in
the ADR is measured on identical bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CREATED = 1763776800
UP_ID = "chatcmpl-AbCdEf0123456789upstreamXYZ"
UP_MODEL = "gpt-4o-mini-2024-07-18"

REQUEST = {
    "model": "openai/gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a concise assistant. Answer in one short paragraph."},
        {"role": "user", "content": "Explain in two sentences why keep-alive matters for an HTTP gateway."},
    ],
    "temperature": 0.2,
    "max_tokens": 256,
    "stream": False,
}

CHAT = {
    "id": UP_ID,
    "object": "chat.completion",
    "created": CREATED,
    "model": UP_MODEL,
    "system_fingerprint": "fp_0ba0d124f1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "Keep-alive lets the gateway reuse an already-open TCP (and TLS) connection "
                    "for many upstream requests, so each call skips the handshake round trips. "
                    "That cuts latency and CPU per request and avoids exhausting ephemeral ports "
                    "under load."
                ),
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 38,
        "completion_tokens": 52,
        "total_tokens": 90,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}

_TEXT = (
    "Keep-alive lets the gateway reuse one open connection for many upstream calls, "
    "skipping handshakes, which cuts latency and CPU per request under load."
)
WORDS = _TEXT.split(" ")


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> dict:
    c: dict = {
        "id": UP_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": UP_MODEL,
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        c["usage"] = usage
    return c


def sse_chunks() -> list[dict]:
    chunks = [_chunk({"role": "assistant", "content": ""})]
    # 18 word chunks + 1 finish chunk + the role chunk above = 20 content chunks
    words = WORDS[:18]
    for i, w in enumerate(words):
        chunks.append(_chunk({"content": w if i == 0 else " " + w}))
    chunks.append(_chunk({}, finish="stop"))
    chunks.append(_chunk({}, usage=CHAT["usage"], choices=False))  # usage chunk
    return chunks


def dumps(o: object) -> bytes:
    return json.dumps(o, separators=(",", ":")).encode()


def request_body(stream: bool = False) -> bytes:
    return dumps({**REQUEST, "stream": stream})


def chat_body() -> bytes:
    return dumps(CHAT)


def sse_body() -> bytes:
    return b"".join(b"data: " + dumps(c) + b"\n\n" for c in sse_chunks()) + b"data: [DONE]\n\n"


def main(out: str) -> None:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "request.json").write_bytes(request_body(False))
    (d / "request_stream.json").write_bytes(request_body(True))
    (d / "chat.json").write_bytes(chat_body())
    (d / "stream.sse").write_bytes(sse_body())


if __name__ == "__main__":
    main(sys.argv[1])
