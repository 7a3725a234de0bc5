"""Pure: an Anthropic Messages response -> our Completion; usage, stop reasons and error types.

`input_tokens` excludes cached tokens, so the prompt is input + cache writes + cache reads (what
OpenRouter reports as `prompt_tokens`, with the two cache counts in `prompt_tokens_details`).
"""

from __future__ import annotations

import json
from typing import Any

from polyroute.domain.chat import Completion, Usage
from polyroute.providers.anthropic.encode import REASONING_FORMAT
from polyroute.providers.chat_output import MessageParts, completion
from polyroute.providers.errors import FailureKind, UpstreamError

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Anthropic error `type` -> the HTTP status it comes with (for errors that arrive inside a stream).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def finish_reason(native: str | None) -> str:
    return FINISH_REASONS.get(native or "", "stop")


def decode_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    written = int(raw.get("cache_creation_input_tokens") or 0)
    read = int(raw.get("cache_read_input_tokens") or 0)
    details = raw.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0) + written + read,
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=read,
        cache_write_tokens=written,
        reasoning_tokens=int(details.get("thinking_tokens") or 0),
    )


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def error_event(body: dict[str, Any]) -> UpstreamError:
    """An `{"type": "error", "error": {"type", "message"}}` payload, in a 200 body or a stream."""
    raw_error = body.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    status = ERROR_STATUS.get(str(error.get("type")), 502)
    return UpstreamError(
        FailureKind.HTTP,
        f"upstream reported {error.get('type') or 'an error'}",
        status=status,
        raw=compact_json(body)[:2000],
    )


def reasoning_detail(block: dict[str, Any], index: int) -> dict[str, Any] | None:
    """A thinking or redacted_thinking block as an OpenRouter `reasoning_details` entry."""
    if block.get("type") == "thinking":
        detail: dict[str, Any] = {"type": "reasoning.text", "text": block.get("thinking") or ""}
        detail["signature"] = block.get("signature") or None
    elif block.get("type") == "redacted_thinking":
        detail = {"type": "reasoning.encrypted", "data": block.get("data") or ""}
    else:
        return None
    detail.update(format=REASONING_FORMAT, index=index)
    return detail


def decode_message(body: Any, *, exclude_reasoning: bool = False) -> Completion:
    if not isinstance(body, dict):
        raise UpstreamError(FailureKind.PROTOCOL, "upstream returned a non-object JSON body")
    if body.get("type") == "error":
        raise error_event(body)
    content = body.get("content")
    if not isinstance(content, list):
        raise UpstreamError(FailureKind.PROTOCOL, "upstream message has no content list")
    parts = MessageParts()
    for block in content:
        if not isinstance(block, dict):
            raise UpstreamError(FailureKind.PROTOCOL, "upstream content block is not an object")
        kind = block.get("type")
        if kind == "text":
            parts.text.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            parts.add_tool_call(str(block.get("id")), str(block.get("name")), compact_json(block.get("input") or {}))
        elif (detail := reasoning_detail(block, len(parts.reasoning_details))) is not None:
            parts.reasoning_details.append(detail)
            parts.reasoning.append(str(detail.get("text") or ""))
    native = body.get("stop_reason")
    return completion(
        parts, finish_reason(native), native, decode_usage(body.get("usage")), exclude_reasoning=exclude_reasoning
    )
