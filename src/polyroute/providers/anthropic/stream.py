"""Pure: Anthropic's streaming events -> OpenAI-shaped chunks, one event at a time.

Content blocks are numbered across text, thinking and tool use; OpenAI numbers tool calls only,
so each `tool_use` block gets the next tool-call `index` and its `input_json_delta` pieces carry
that index. A tool whose input arrives whole in `content_block_start` (or not at all) still gets
its arguments, at `content_block_stop`. `message_stop` ends the stream with the finish chunk and a
usage chunk; an `error` event becomes an UpstreamError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from polyroute.domain.chat import Chunk, Usage
from polyroute.providers import chat_output as out
from polyroute.providers.anthropic import decode
from polyroute.providers.anthropic.encode import REASONING_FORMAT
from polyroute.providers.errors import FailureKind, UpstreamError


@dataclass(slots=True)
class _ToolBlock:
    index: int  # the OpenAI tool-call index
    start_input: Any
    sent_arguments: bool = False


class StreamTranslator:
    """Feed it each event's parsed JSON; it returns the chunks to pass on (often none)."""

    def __init__(self, *, exclude_reasoning: bool = False) -> None:
        self._exclude_reasoning = exclude_reasoning
        self._tools: dict[int, _ToolBlock] = {}  # content block index -> tool call
        self._reasoning_index: dict[int, int] = {}  # content block index -> reasoning_details index
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self.finished = False

    @property
    def usage(self) -> Usage | None:
        return decode.decode_usage(self._usage) if self._usage else None

    def feed(self, event: Any) -> list[Chunk]:
        if not isinstance(event, dict):
            raise UpstreamError(FailureKind.PROTOCOL, "upstream stream event is not a JSON object")
        kind = event.get("type")
        if kind == "message_start":
            self._usage.update((event.get("message") or {}).get("usage") or {})
            return [out.role_chunk()]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index") or 0), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index") or 0), event.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(int(event.get("index") or 0))
        if kind == "message_delta":
            self._stop_reason = (event.get("delta") or {}).get("stop_reason") or self._stop_reason
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            return []
        if kind == "message_stop":
            self.finished = True
            chunks = [out.finish_chunk(decode.finish_reason(self._stop_reason), self._stop_reason)]
            if (usage := self.usage) is not None:
                chunks.append(out.usage_chunk(usage))
            return chunks
        if kind == "error":
            raise decode.error_event(event)
        return []  # ping, and event types newer than this adapter

    def _reasoning(self, block_index: int, detail: dict[str, Any]) -> list[Chunk]:
        if self._exclude_reasoning:
            return []
        detail["index"] = self._reasoning_index.setdefault(block_index, len(self._reasoning_index))
        return [out.reasoning_chunk(detail)]

    def _block_start(self, block_index: int, block: dict[str, Any]) -> list[Chunk]:
        kind = block.get("type")
        if kind == "tool_use":
            tool = _ToolBlock(len(self._tools), block.get("input"))
            self._tools[block_index] = tool
            return [out.tool_start_chunk(tool.index, str(block.get("id")), str(block.get("name")))]
        if kind == "text" and block.get("text"):
            return [out.text_chunk(str(block["text"]))]
        if kind in ("thinking", "redacted_thinking"):
            detail = decode.reasoning_detail(block, 0)
            if detail is not None and (detail.get("text") or detail.get("data") or detail.get("signature")):
                return self._reasoning(block_index, detail)
            self._reasoning_index.setdefault(block_index, len(self._reasoning_index))
        return []

    def _block_delta(self, block_index: int, delta: dict[str, Any]) -> list[Chunk]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [out.text_chunk(str(delta.get("text") or ""))] if delta.get("text") else []
        if kind == "input_json_delta":
            tool = self._tools.get(block_index)
            fragment = str(delta.get("partial_json") or "")
            if tool is None or not fragment:
                return []
            tool.sent_arguments = True
            return [out.tool_arguments_chunk(tool.index, fragment)]
        if kind == "thinking_delta":
            thinking = str(delta.get("thinking") or "")
            detail: dict[str, Any] = {"type": "reasoning.text", "text": thinking, "format": REASONING_FORMAT}
            return self._reasoning(block_index, detail)
        if kind == "signature_delta":
            signature = delta.get("signature")
            detail = {"type": "reasoning.text", "text": "", "signature": signature, "format": REASONING_FORMAT}
            return self._reasoning(block_index, detail)
        return []  # citations_delta and newer kinds carry nothing OpenAI chunks can hold

    def _block_stop(self, block_index: int) -> list[Chunk]:
        tool = self._tools.get(block_index)
        if tool is None or tool.sent_arguments:
            return []
        tool.sent_arguments = True
        return [out.tool_arguments_chunk(tool.index, decode.compact_json(tool.start_input or {}))]
