"""The `local` dialect: GGUF models generated in-process, one worker thread per model.

Each model has a bounded queue: a request beyond `max_queue` waiting or running gets a 429 with
Retry-After at once rather than an unbounded wait. Generation runs off the event loop; when the
client goes away the loop is told to stop at the next token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from polyroute.catalog.types import EndpointSpec, ProviderSpec
from polyroute.domain.chat import ChatRequest, Chunk, Completion, Usage
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.providers.local.engine import LocalModel, PromptTooLong, Sampling
from polyroute.providers.local.packaged import model_source
from polyroute.providers.registry import ProviderContext

DEFAULT_MAX_QUEUE = 8


@dataclass(slots=True)
class _Slot:
    model: LocalModel
    executor: ThreadPoolExecutor
    in_flight: int = 0


def sampling_of(request: ChatRequest, default_temperature: float) -> Sampling:
    params = request.params
    stop = params.get("stop") or []
    return Sampling(
        max_tokens=request.max_tokens,
        temperature=float(params.get("temperature", default_temperature)),
        top_p=float(params.get("top_p", 0.95)),
        top_k=int(params.get("top_k", 40)),
        seed=params.get("seed"),
        stop=[stop] if isinstance(stop, str) else list(stop),
        repeat_penalty=float(params.get("repetition_penalty", 1.0)),
        frequency_penalty=float(params.get("frequency_penalty", 0.0)),
        presence_penalty=float(params.get("presence_penalty", 0.0)),
    )


class LocalProvider:
    def __init__(self, spec: ProviderSpec, ctx: ProviderContext) -> None:
        self.spec = spec
        self._slots: dict[str, _Slot] = {}
        self._max_queue = int(spec.options.get("max_queue", DEFAULT_MAX_QUEUE))

    def _slot(self, endpoint: EndpointSpec) -> _Slot:
        key = endpoint.model_path or endpoint.upstream_id
        slot = self._slots.get(key)
        if slot is None:
            source = model_source(endpoint.upstream_id, endpoint.model_path, self.spec.options)
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{source.name}")
            slot = self._slots[key] = _Slot(LocalModel(source), executor)
        return slot

    async def complete(self, request: ChatRequest, endpoint: EndpointSpec) -> Completion:
        text: list[str] = []
        finish, usage = "stop", Usage()
        async for chunk in self.stream(request, endpoint):
            for choice in chunk.choices:
                text.append(choice["delta"].get("content") or "")
                finish = choice.get("finish_reason") or finish
            usage = chunk.usage or usage
        message = {"role": "assistant", "content": "".join(text)}
        choice = {"index": 0, "message": message, "finish_reason": finish, "native_finish_reason": finish}
        return Completion(choices=[choice], usage=usage)

    async def stream(self, request: ChatRequest, endpoint: EndpointSpec) -> AsyncGenerator[Chunk, None]:
        slot = self._slot(endpoint)
        if slot.in_flight >= self._max_queue:
            raise UpstreamError(
                FailureKind.HTTP, "local model is busy", status=429, raw="local model queue is full", retry_after_s=1
            )
        slot.in_flight += 1
        cancelled = threading.Event()
        events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        sampling = sampling_of(request, slot.model.source.default_temperature)

        def emit(item: tuple[Any, ...]) -> None:
            loop.call_soon_threadsafe(events.put_nowait, item)

        def work() -> None:
            try:
                if cancelled.is_set():
                    return
                slot.model.ensure_loaded()
                prompt = slot.model.tokenize_prompt(request.messages)
                emit(("prompt", len(prompt)))
                slot.model.generate(prompt, sampling, cancelled, emit)
            except PromptTooLong as exc:
                emit(("error", UpstreamError(FailureKind.HTTP, str(exc), status=400, raw=str(exc))))
            except Exception as exc:  # a broken model file must not take the worker down
                emit(("error", UpstreamError(FailureKind.PROTOCOL, f"local model failed: {type(exc).__name__}")))

        loop.run_in_executor(slot.executor, work)
        try:
            async with aclosing(_chunks(events)) as chunks:  # closed here if our consumer leaves early
                async for chunk in chunks:
                    yield chunk
        finally:
            cancelled.set()
            slot.in_flight -= 1

    async def aclose(self) -> None:
        for slot in self._slots.values():
            slot.executor.shutdown(wait=False, cancel_futures=True)


async def _chunks(events: asyncio.Queue[tuple[Any, ...]]) -> AsyncGenerator[Chunk, None]:
    prompt_tokens, first = 0, True
    while True:
        event = await events.get()
        kind = event[0]
        if kind == "error":
            raise event[1]
        if kind == "prompt":
            prompt_tokens = event[1]
        elif kind == "text":
            delta: dict[str, Any] = {"role": "assistant", "content": event[1]} if first else {"content": event[1]}
            first = False
            yield Chunk(choices=[{"index": 0, "delta": delta, "finish_reason": None}], has_content=True)
        elif kind == "done":
            finish, produced = event[1], event[2]
            last_delta: dict[str, Any] = {"role": "assistant"} if first else {}
            choice = {"index": 0, "delta": last_delta, "finish_reason": finish, "native_finish_reason": finish}
            yield Chunk(choices=[choice])
            # Usage last, in a chunk of its own, as OpenAI's `stream_options.include_usage` does.
            yield Chunk(choices=[], usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=produced))
            return
