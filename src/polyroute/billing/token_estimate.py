"""Token counts we work out ourselves: a rough count for when an upstream reports no usage, and an
upper bound of the prompt for reservations.

Real counts from the upstream (or the local tokenizer) always win for charging.
"""

from __future__ import annotations

import json
from typing import Any

CHARS_PER_TOKEN = 4
# The bound assumes at least 3 UTF-8 bytes per token: true of BPE vocabularies on prose and code in
# any script (CJK characters take 3 bytes and rarely less than one token each).
BYTES_PER_TOKEN_BOUND = 3
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators of the chat template
REQUEST_OVERHEAD_TOKENS = 16
MEDIA_PART_TOKENS = 2_000  # an image, audio clip or file part, whatever its size
_PROMPT_PARAMS = ("tools", "response_format", "tool_choice")


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(part.get("text") or "") for part in content if isinstance(part, dict))
    return 0


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    chars = sum(_text_chars(message.get("content")) + 4 for message in messages)
    return max(1, -(-chars // CHARS_PER_TOKEN))


def estimate_text_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN) if text else 0


def _content_bytes_and_media(content: Any) -> tuple[int, int]:
    if isinstance(content, str):
        return len(content.encode("utf-8")), 0
    if not isinstance(content, list):
        return 0, 0
    size = media = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type", "text") == "text":
            size += len(str(part.get("text") or "").encode("utf-8"))
        else:
            media += 1
    return size, media


def prompt_token_bound(messages: list[dict[str, Any]], params: dict[str, Any] | None = None) -> int:
    """At least as many tokens as the upstream will count for this prompt, for ordinary text.

    Always >= `estimate_prompt_tokens`, so a charge based on that estimate never exceeds a
    reservation based on this bound. Tool calls, tool definitions and structured-output schemas
    count as their JSON text; media parts count `MEDIA_PART_TOKENS` each."""
    size = media = 0
    for message in messages:
        text_bytes, parts = _content_bytes_and_media(message.get("content"))
        size += text_bytes
        media += parts
        for extra in ("tool_calls", "name", "tool_call_id"):
            if message.get(extra):
                size += len(json.dumps(message[extra], ensure_ascii=False).encode("utf-8"))
    for name in _PROMPT_PARAMS:
        if (params or {}).get(name) is not None:
            size += len(json.dumps(params[name], ensure_ascii=False).encode("utf-8"))  # type: ignore[index]
    tokens = -(-size // BYTES_PER_TOKEN_BOUND) + MESSAGE_OVERHEAD_TOKENS * len(messages)
    return tokens + MEDIA_PART_TOKENS * media + REQUEST_OVERHEAD_TOKENS
