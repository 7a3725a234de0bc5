"""OpenAI/OpenRouter wire shapes for chat results, stream chunks and usage.

Only here do integer pUSD become JSON numbers in USD.
"""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.billing.pricing import Cost
from polyroute.domain.chat import Usage
from polyroute.domain.errors import GatewayError
from polyroute.domain.money import pusd_to_usd_float

_encode = msgspec.json.encode


def usage_body(usage: Usage, cost: Cost) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost": pusd_to_usd_float(cost.total_pusd),
        "is_byok": False,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens, "audio_tokens": 0},
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": pusd_to_usd_float(cost.prompt_pusd),
            "upstream_inference_completions_cost": pusd_to_usd_float(cost.completion_pusd),
        },
    }


def completion_body(
    *,
    generation_id: str,
    created_s: int,
    model_id: str,
    provider_name: str,
    choices: list[dict[str, Any]],
    system_fingerprint: str | None,
    usage: Usage,
    cost: Cost,
) -> dict[str, Any]:
    return {
        "id": generation_id,
        "provider": provider_name,
        "model": model_id,
        "object": "chat.completion",
        "created": created_s,
        "choices": choices,
        "system_fingerprint": system_fingerprint,
        "usage": usage_body(usage, cost),
    }


def chunk_body(
    *,
    generation_id: str,
    created_s: int,
    model_id: str,
    provider_name: str,
    choices: list[dict[str, Any]],
    system_fingerprint: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": generation_id,
        "provider": provider_name,
        "model": model_id,
        "object": "chat.completion.chunk",
        "created": created_s,
        "choices": choices,
    }
    if system_fingerprint is not None:
        body["system_fingerprint"] = system_fingerprint
    return body


class ChunkEvents:
    """One stream's chunks as SSE `data:` events, byte for byte `data: <chunk_body JSON>\n\n`.

    The fields every chunk repeats (id, provider, model, object, created) are encoded once per
    attempt rather than once per chunk (issue #9).
    """

    __slots__ = ("_created_s", "_for", "_generation_id", "_head")

    def __init__(self, generation_id: str, created_s: int) -> None:
        self._generation_id = generation_id
        self._created_s = created_s
        self._for: tuple[str, str] | None = None
        self._head = b""

    def event(
        self, *, model_id: str, provider_name: str, choices: list[dict[str, Any]], system_fingerprint: str | None
    ) -> bytes:
        if self._for != (model_id, provider_name):
            self._for = (model_id, provider_name)
            self._head = b"".join((
                b'data: {"id":',
                _encode(self._generation_id),
                b',"provider":',
                _encode(provider_name),
                b',"model":',
                _encode(model_id),
                b',"object":"chat.completion.chunk","created":',
                _encode(self._created_s),
                b',"choices":',
            ))  # fmt: skip
        if system_fingerprint is None:
            return self._head + _encode(choices) + b"}\n\n"
        return self._head + _encode(choices) + b',"system_fingerprint":' + _encode(system_fingerprint) + b"}\n\n"


def error_chunk_choice(native_finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "index": 0,
        "delta": {"content": ""},
        "finish_reason": "error",
        "native_finish_reason": native_finish_reason,
    }


def stream_error_fields(error: GatewayError) -> dict[str, Any]:
    """The top-level `error` of a mid-stream failure chunk (HTTP status stays 200)."""
    fields: dict[str, Any] = error.envelope()["error"]
    return fields
