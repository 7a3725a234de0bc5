"""Pure builders of OpenAI-shaped results, shared by the decoders of non-OpenAI dialects.

Every adapter answers in the same shapes: a Completion whose one choice carries `message`
(`content`, `reasoning`, `reasoning_details`, `tool_calls`), and Chunks whose deltas follow
OpenAI's streaming order: role, content / reasoning / tool-call pieces, finish, then usage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polyroute.domain.chat import Chunk, Completion, Usage


@dataclass(slots=True)
class MessageParts:
    """What one assistant turn said, collected block by block before it becomes a choice."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    reasoning_details: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def add_tool_call(self, call_id: str, name: str, arguments: str) -> None:
        self.tool_calls.append(tool_call(call_id, name, arguments))


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion(
    parts: MessageParts,
    finish_reason: str,
    native_finish_reason: str | None,
    usage: Usage | None,
    *,
    exclude_reasoning: bool = False,
) -> Completion:
    text = "".join(parts.text)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not parts.tool_calls else None,
        "refusal": None,
    }
    if (parts.reasoning or parts.reasoning_details) and not exclude_reasoning:
        message["reasoning"] = "".join(parts.reasoning) or None
        message["reasoning_details"] = parts.reasoning_details
    if parts.tool_calls:
        message["tool_calls"] = parts.tool_calls
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": finish_reason,
        "native_finish_reason": native_finish_reason,
        "logprobs": None,
    }
    return Completion(choices=[choice], usage=usage)


def delta_chunk(delta: dict[str, Any], *, has_content: bool = True) -> Chunk:
    choice = {"index": 0, "delta": delta, "finish_reason": None, "native_finish_reason": None}
    return Chunk(choices=[choice], has_content=has_content)


def role_chunk() -> Chunk:
    """The first chunk of every stream: the assistant role and empty content (not yet content)."""
    return delta_chunk({"role": "assistant", "content": ""}, has_content=False)


def text_chunk(text: str) -> Chunk:
    return delta_chunk({"content": text})


def reasoning_chunk(detail: dict[str, Any]) -> Chunk:
    """A reasoning piece: its text in `reasoning`, and the detail (text and/or signature) as-is."""
    delta: dict[str, Any] = {"reasoning": detail.get("text") or "", "reasoning_details": [detail]}
    return delta_chunk(delta)


def tool_start_chunk(index: int, call_id: str, name: str, arguments: str = "") -> Chunk:
    call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return delta_chunk({"tool_calls": [call]})


def tool_arguments_chunk(index: int, fragment: str) -> Chunk:
    return delta_chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})


def finish_chunk(finish_reason: str, native_finish_reason: str | None) -> Chunk:
    choice = {"index": 0, "delta": {}, "finish_reason": finish_reason, "native_finish_reason": native_finish_reason}
    return Chunk(choices=[choice])


def usage_chunk(usage: Usage) -> Chunk:
    return Chunk(choices=[], usage=usage)
