"""Pure: Bedrock Converse responses and ConverseStream events -> our Completion and Chunks.

`inputTokens` excludes cache reads and writes, so the prompt is the sum of the three. Stream
events are `(event type, payload)` pairs from the event-stream frames: `messageStart`,
`contentBlockStart` (tool use only), `contentBlockDelta`, `contentBlockStop`, `messageStop` (the
finish chunk) and `metadata` (the usage chunk, last). Exception frames become UpstreamErrors.
"""

from __future__ import annotations

import json
from typing import Any

from polyroute.domain.chat import Chunk, Completion, Usage
from polyroute.providers import chat_output as out
from polyroute.providers.anthropic.encode import REASONING_FORMAT
from polyroute.providers.errors import FailureKind, UpstreamError

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}
# Exception frames inside a stream, by `:exception-type`, and the HTTP status they stand for.
EXCEPTION_STATUS = {
    "throttlingException": 429,
    "validationException": 400,
    "modelStreamErrorException": 424,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}


def finish_reason(native: str | None) -> str:
    return FINISH_REASONS.get(native or "", "stop")


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def decode_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    read = int(raw.get("cacheReadInputTokens") or 0)
    written = int(raw.get("cacheWriteInputTokens") or 0)
    return Usage(
        prompt_tokens=int(raw.get("inputTokens") or 0) + read + written,
        completion_tokens=int(raw.get("outputTokens") or 0),
        cached_tokens=read,
        cache_write_tokens=written,
    )


def stream_exception(exception_type: str, payload: Any) -> UpstreamError:
    raw = compact_json(payload) if not isinstance(payload, bytes) else payload.decode("utf-8", "replace")
    status = EXCEPTION_STATUS.get(exception_type, 502)
    return UpstreamError(FailureKind.HTTP, f"upstream sent {exception_type}", status=status, raw=raw[:2000])


def _reasoning_detail(block: dict[str, Any], index: int) -> dict[str, Any] | None:
    if isinstance(block.get("reasoningText"), dict):
        text = block["reasoningText"]
        detail = {"type": "reasoning.text", "text": text.get("text") or "", "signature": text.get("signature")}
    elif block.get("redactedContent"):
        detail = {"type": "reasoning.encrypted", "data": str(block["redactedContent"])}
    else:
        return None
    return {**detail, "format": REASONING_FORMAT, "index": index}


def decode_converse(body: Any, *, exclude_reasoning: bool = False) -> Completion:
    if not isinstance(body, dict) or not isinstance((body.get("output") or {}).get("message"), dict):
        raise UpstreamError(FailureKind.PROTOCOL, "upstream response has no output message")
    parts = out.MessageParts()
    for block in body["output"]["message"].get("content") or []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            parts.text.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            parts.add_tool_call(str(use.get("toolUseId")), str(use.get("name")), compact_json(use.get("input") or {}))
        elif isinstance(block.get("reasoningContent"), dict):
            detail = _reasoning_detail(block["reasoningContent"], len(parts.reasoning_details))
            if detail is not None:
                parts.reasoning_details.append(detail)
                parts.reasoning.append(detail.get("text") or "")
    native = body.get("stopReason")
    return out.completion(
        parts, finish_reason(native), native, decode_usage(body.get("usage")), exclude_reasoning=exclude_reasoning
    )


class StreamTranslator:
    """Feed it `(event type, payload)`; it returns the chunks to pass on."""

    def __init__(self, *, exclude_reasoning: bool = False) -> None:
        self._exclude_reasoning = exclude_reasoning
        self._tools: dict[int, list[Any]] = {}  # block index -> [tool-call index, arguments sent]
        self._reasoning: dict[int, int] = {}  # block index -> reasoning_details index
        self.stopped = False  # messageStop seen: only the usage may follow
        self.finished = False

    def feed(self, event_type: str, payload: Any) -> list[Chunk]:
        if not isinstance(payload, dict):
            raise UpstreamError(FailureKind.PROTOCOL, "upstream stream event is not a JSON object")
        index = int(payload.get("contentBlockIndex") or 0)
        if event_type == "messageStart":
            return [out.role_chunk()]
        if event_type == "contentBlockStart":
            use = (payload.get("start") or {}).get("toolUse")
            if not isinstance(use, dict):
                return []
            self._tools[index] = [len(self._tools), False]
            return [out.tool_start_chunk(self._tools[index][0], str(use.get("toolUseId")), str(use.get("name")))]
        if event_type == "contentBlockDelta":
            return self._delta(index, payload.get("delta") or {})
        if event_type == "contentBlockStop":
            tool = self._tools.get(index)
            if tool is None or tool[1]:
                return []
            tool[1] = True
            return [out.tool_arguments_chunk(tool[0], "{}")]
        if event_type == "messageStop":
            self.stopped = True
            native = payload.get("stopReason")
            return [out.finish_chunk(finish_reason(native), native)]
        if event_type == "metadata":
            self.finished = True
            usage = decode_usage(payload.get("usage"))
            return [out.usage_chunk(usage)] if usage is not None else []
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[Chunk]:
        if isinstance(delta.get("text"), str):
            return [out.text_chunk(delta["text"])] if delta["text"] else []
        if isinstance(delta.get("toolUse"), dict) and index in self._tools:
            fragment = str(delta["toolUse"].get("input") or "")
            if not fragment:
                return []
            self._tools[index][1] = True
            return [out.tool_arguments_chunk(self._tools[index][0], fragment)]
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict) and not self._exclude_reasoning:
            if "redactedContent" in reasoning:
                detail: dict[str, Any] = {"type": "reasoning.encrypted", "data": str(reasoning["redactedContent"])}
            else:
                detail = {"type": "reasoning.text", "text": str(reasoning.get("text") or "")}
                if reasoning.get("signature"):
                    detail["signature"] = reasoning["signature"]
            detail.update(format=REASONING_FORMAT, index=self._reasoning.setdefault(index, len(self._reasoning)))
            return [out.reasoning_chunk(detail)]
        return []
