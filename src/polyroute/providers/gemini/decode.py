"""Pure: Gemini `GenerateContentResponse`s -> our Completion and Chunks; usage and finish reasons.

`candidatesTokenCount` excludes thinking, so completion tokens are candidates + thoughts (the
thoughts also reported as reasoning tokens); `cachedContentTokenCount` is part of the prompt.
Gemini says STOP even when it called a function: a turn with calls finishes with `tool_calls`.
A prompt blocked by safety filters has no candidates, only `promptFeedback.blockReason`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from polyroute.domain.chat import Chunk, Completion, Usage
from polyroute.providers import chat_output as out
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.gemini.encode import REASONING_FORMAT

_CONTENT_FILTER = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
_ERROR = frozenset(
    {
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    }
)


def finish_reason(native: str | None, *, called_tools: bool) -> str:
    if native == "MAX_TOKENS":
        return "length"
    if native in _CONTENT_FILTER:
        return "content_filter"
    if native in _ERROR:
        return "error"
    return "tool_calls" if called_tools else "stop"


def decode_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    thoughts = int(raw.get("thoughtsTokenCount") or 0)
    return Usage(
        prompt_tokens=int(raw.get("promptTokenCount") or 0) + int(raw.get("toolUsePromptTokenCount") or 0),
        completion_tokens=int(raw.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(raw.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def embedded_error(body: dict[str, Any]) -> UpstreamError:
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = error.get("code") if isinstance(error, dict) else None
    return UpstreamError(
        FailureKind.HTTP,
        "upstream reported an error",
        status=code if isinstance(code, int) and code >= 400 else 502,
        raw=json.dumps(body, separators=(",", ":"))[:2000],
    )


@dataclass(slots=True)
class ResponseReader:
    """Reads one response, or each chunk of a stream, keeping tool-call and reasoning numbering."""

    exclude_reasoning: bool = False
    response_id: str = field(default_factory=lambda: secrets.token_hex(6))
    tool_calls: int = 0
    reasoning_details: int = 0
    _thinking: bool = False  # the previous part was thought text: the next one continues its detail

    def check(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise UpstreamError(FailureKind.PROTOCOL, "upstream returned a non-object JSON body")
        if body.get("error"):
            raise embedded_error(body)
        if isinstance(body.get("responseId"), str):
            self.response_id = body["responseId"]
        return body

    def candidate(self, body: dict[str, Any]) -> dict[str, Any] | None:
        candidates = body.get("candidates")
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
            return candidates[0]
        return None

    def part_chunks(self, part: dict[str, Any]) -> list[Chunk]:
        """One part as stream chunks; the same numbering feeds `parts` for whole responses."""
        chunks: list[Chunk] = []
        for kind, value in self.read_part(part):
            if kind == "text":
                chunks.append(out.text_chunk(value))
            elif kind == "reasoning":
                chunks.append(out.reasoning_chunk(value))
            else:
                call = value
                chunks.append(out.tool_start_chunk(call["index"], call["id"], call["name"], call["arguments"]))
        return chunks

    def read_part(self, part: dict[str, Any]) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        call_id: str | None = None
        function_call = part.get("functionCall")
        if isinstance(function_call, dict):
            call_id = str(function_call.get("id") or f"call_{self.response_id}_{self.tool_calls}")
            arguments = json.dumps(function_call.get("args") or {}, separators=(",", ":"), ensure_ascii=False)
            items.append(
                (
                    "tool",
                    {
                        "index": self.tool_calls,
                        "id": call_id,
                        "name": str(function_call.get("name")),
                        "arguments": arguments,
                    },
                )
            )
            self.tool_calls += 1
        elif part.get("thought") and isinstance(part.get("text"), str):
            continues = self._thinking
            items.append(("reasoning", self._detail({"type": "reasoning.text", "text": part["text"]}, continues)))
        elif isinstance(part.get("text"), str) and part["text"]:
            items.append(("text", part["text"]))
        self._thinking = bool(part.get("thought"))
        signature = part.get("thoughtSignature")
        if isinstance(signature, str) and signature:
            items.append(("reasoning", self._detail({"type": "reasoning.encrypted", "data": signature, "id": call_id})))
            self._thinking = False
        if self.exclude_reasoning:
            items = [item for item in items if item[0] != "reasoning"]
        return items

    def _detail(self, detail: dict[str, Any], continues: bool = False) -> dict[str, Any]:
        """Number the detail; streamed thought text continues the previous detail's index."""
        if continues:
            detail.update(format=REASONING_FORMAT, index=self.reasoning_details - 1)
            return detail
        detail.update(format=REASONING_FORMAT, index=self.reasoning_details)
        self.reasoning_details += 1
        return detail


def decode_response(body: Any, *, exclude_reasoning: bool = False) -> Completion:
    reader = ResponseReader(exclude_reasoning=exclude_reasoning)
    body = reader.check(body)
    usage = decode_usage(body.get("usageMetadata"))
    candidate = reader.candidate(body)
    if candidate is None:
        block = (body.get("promptFeedback") or {}).get("blockReason")
        if not block:
            raise UpstreamError(FailureKind.PROTOCOL, "upstream response has no candidates")
        return out.completion(out.MessageParts(), "content_filter", str(block), usage)
    parts = out.MessageParts()
    for part in (candidate.get("content") or {}).get("parts") or []:
        for kind, value in reader.read_part(part if isinstance(part, dict) else {}):
            if kind == "text":
                parts.text.append(value)
            elif kind == "reasoning":
                parts.reasoning.append(value.get("text") or "")
                last = parts.reasoning_details[-1] if parts.reasoning_details else None
                if last is not None and last["index"] == value["index"]:  # thought text in several parts
                    last["text"] += value.get("text") or ""
                else:
                    parts.reasoning_details.append(value)
            else:
                parts.add_tool_call(value["id"], value["name"], value["arguments"])
    native = candidate.get("finishReason")
    finish = finish_reason(native, called_tools=bool(parts.tool_calls))
    return out.completion(parts, finish, native, usage)
