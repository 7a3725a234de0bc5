"""Rough token counts for when an upstream reports no usage (about 4 characters a token).

Only a fallback: real counts from the upstream (or the local tokenizer) always win.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4


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
