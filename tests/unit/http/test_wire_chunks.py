"""ChunkEvents writes exactly the bytes of encoding chunk_body, with its fixed fields encoded once."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from polyroute.http import wire

CHOICES: list[list[dict[str, Any]]] = [
    [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    [{"index": 0, "delta": {"content": 'say "hi" \\ é ✓ \n'}, "finish_reason": None, "logprobs": None}],
    [{"index": 0, "delta": {}, "finish_reason": "stop", "native_finish_reason": "stop"}],
    [],
]


@pytest.mark.parametrize("fingerprint", [None, "fp_0ba0d124f1", 'q"uote'])
def test_events_match_the_encoded_chunk_body(fingerprint: str | None) -> None:
    events = wire.ChunkEvents("gen-1-abc", 1_763_776_800)
    attempts = [("openai/gpt-4o", "OpenAI"), ("openai/gpt-4o", "OpenAI"), ("m/ü", 'Pro"vider'), ("openai/gpt-4o", "")]
    for (model_id, provider_name), choices in zip(attempts, CHOICES, strict=True):
        body = wire.chunk_body(
            generation_id="gen-1-abc",
            created_s=1_763_776_800,
            model_id=model_id,
            provider_name=provider_name,
            choices=choices,
            system_fingerprint=fingerprint,
        )
        expected = b"data: " + msgspec.json.encode(body) + b"\n\n"
        got = events.event(
            model_id=model_id, provider_name=provider_name, choices=choices, system_fingerprint=fingerprint
        )
        assert got == expected
