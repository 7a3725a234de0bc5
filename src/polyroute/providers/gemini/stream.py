"""Pure: the chunks of `streamGenerateContent?alt=sse` -> OpenAI-shaped chunks.

Each SSE event is a whole `GenerateContentResponse` holding the next parts; a function call
arrives complete in one part, so its chunk carries the full arguments. The event with a
`finishReason` ends the stream (there is no `[DONE]`): then come the finish and usage chunks.
"""

from __future__ import annotations

from typing import Any

from polyroute.domain.chat import Chunk, Usage
from polyroute.providers import chat_output as out
from polyroute.providers.gemini.decode import ResponseReader, decode_usage, finish_reason


class StreamTranslator:
    def __init__(self, *, exclude_reasoning: bool = False) -> None:
        self._reader = ResponseReader(exclude_reasoning=exclude_reasoning)
        self._started = False
        self.usage: Usage | None = None
        self.finished = False

    def feed(self, event: Any) -> list[Chunk]:
        body = self._reader.check(event)
        chunks: list[Chunk] = []
        if not self._started:
            self._started = True
            chunks.append(out.role_chunk())
        if (usage := decode_usage(body.get("usageMetadata"))) is not None:
            self.usage = usage
        candidate = self._reader.candidate(body)
        if candidate is None:
            block = (body.get("promptFeedback") or {}).get("blockReason")
            if block:
                chunks.extend(self._finish("content_filter", str(block)))
            return chunks
        for part in (candidate.get("content") or {}).get("parts") or []:
            if isinstance(part, dict):
                chunks.extend(self._reader.part_chunks(part))
        native = candidate.get("finishReason")
        if native:
            chunks.extend(self._finish(finish_reason(native, called_tools=self._reader.tool_calls > 0), native))
        return chunks

    def _finish(self, finish: str, native: str) -> list[Chunk]:
        self.finished = True
        chunks = [out.finish_chunk(finish, native)]
        if self.usage is not None:
            chunks.append(out.usage_chunk(self.usage))
        return chunks
