"""Pure: OpenAI-compatible upstream JSON -> our Completion / Chunk, finish reasons normalised."""

from __future__ import annotations

from typing import Any

from polyroute.domain.chat import FINISH_REASONS, Chunk, Completion, Usage
from polyroute.providers.errors import FailureKind, UpstreamError

_NATIVE_TO_FINISH = {"function_call": "tool_calls", "eos": "stop", "stop_sequence": "stop"}


def normalize_finish_reason(native: Any) -> str | None:
    if native is None:
        return None
    if native in FINISH_REASONS:
        return str(native)
    return _NATIVE_TO_FINISH.get(str(native), "stop")


def decode_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def _raise_embedded_error(body: dict[str, Any]) -> None:
    """Some hosts (OpenRouter itself) answer 200 with an `error` object instead of choices."""
    error = body.get("error")
    if error:
        status = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise UpstreamError(
            FailureKind.HTTP,
            "upstream returned an error",
            status=status if isinstance(status, int) else 502,
            raw=str(message)[:2000],
        )


def decode_completion(body: Any) -> Completion:
    if not isinstance(body, dict):
        raise UpstreamError(FailureKind.PROTOCOL, "upstream returned a non-object JSON body")
    _raise_embedded_error(body)
    raw_choices = body.get("choices")
    if not isinstance(raw_choices, list):
        raise UpstreamError(FailureKind.PROTOCOL, "upstream response has no choices")
    choices = []
    for position, choice in enumerate(raw_choices):
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            raise UpstreamError(FailureKind.PROTOCOL, "upstream choice has no message")
        native = choice.get("finish_reason")
        choice["finish_reason"] = normalize_finish_reason(native) or "stop"
        choice["native_finish_reason"] = native
        choice.setdefault("index", position)
        choice.setdefault("logprobs", None)
        choices.append(choice)
    return Completion(
        choices=choices,
        usage=decode_usage(body.get("usage")),
        system_fingerprint=body.get("system_fingerprint"),
        service_tier=body.get("service_tier"),
    )


def _delta_has_content(delta: dict[str, Any]) -> bool:
    return bool(delta.get("content") or delta.get("tool_calls") or delta.get("reasoning") or delta.get("refusal"))


def decode_chunk(body: Any) -> Chunk:
    if not isinstance(body, dict):
        raise UpstreamError(FailureKind.PROTOCOL, "upstream stream chunk is not a JSON object")
    _raise_embedded_error(body)
    raw_choices = body.get("choices") or []
    has_content = False
    for choice in raw_choices:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = choice["delta"] = {}
        native = choice.get("finish_reason")
        choice["finish_reason"] = normalize_finish_reason(native)
        choice["native_finish_reason"] = native
        if not has_content:
            has_content = _delta_has_content(delta)
    return Chunk(
        choices=raw_choices,
        usage=decode_usage(body.get("usage")),
        system_fingerprint=body.get("system_fingerprint"),
        has_content=has_content,
    )
