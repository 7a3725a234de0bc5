"""One loaded GGUF model and its generation loop, run on a worker thread (llama.cpp blocks).

Token ids are generated with `Llama.generate`, so usage counts are exact: prompt tokens are the
tokenized prompt, completion tokens the tokens generated (the end-of-turn token excluded).
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polyroute.providers.local.prompt import GEMMA_FORMAT, gemma_prompt, render_template
from polyroute.providers.local.stops import StopScanner

log = logging.getLogger(__name__)

# Special tokens that end an assistant turn in the chat formats we know.
END_OF_TURN_MARKERS = ("<|im_end|>", "<end_of_turn>", "<|endoftext|>", "<|eot_id|>", "<eos>", "</s>")


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a model's weights are and how to prompt it."""

    name: str  # for logs
    path: str
    chat_format: str | None = None  # None: the file's own template; "gemma": Gemma turns
    n_ctx: int = 4096
    n_threads: int | None = None
    default_temperature: float = 0.7


@dataclass(slots=True)
class Sampling:
    max_tokens: int | None = None
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0


class PromptTooLong(ValueError):
    def __init__(self, prompt_tokens: int, n_ctx: int) -> None:
        super().__init__(f"prompt is {prompt_tokens} tokens; this model's context is {n_ctx}")
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


# The generation loop reports through this: ("text", str) pieces, then ("done", finish_reason, completion_tokens).
Emit = Callable[[tuple[Any, ...]], None]


class LocalModel:
    def __init__(self, source: ModelSource) -> None:
        self.source = source
        self._llm: Any = None
        self._load_lock = threading.Lock()
        self._end_ids: frozenset[int] = frozenset()
        self._template: str | None = None
        self._bos = ""
        self._eos = ""

    def ensure_loaded(self) -> None:
        with self._load_lock:
            if self._llm is None:
                self._load()

    def _load(self) -> None:
        from llama_cpp import Llama  # imported lazily: loading the native library costs ~100 ms

        started = time.perf_counter()
        llm = Llama(
            model_path=self.source.path,
            n_ctx=self.source.n_ctx,
            n_threads=self.source.n_threads,
            verbose=False,
        )
        metadata = llm.metadata or {}
        self._template = metadata.get("tokenizer.chat_template") if self.source.chat_format is None else None
        self._bos = _piece(llm, llm.token_bos())
        self._eos = _piece(llm, llm.token_eos())
        ends = {llm.token_eos()}
        for marker in END_OF_TURN_MARKERS:
            ids = llm.tokenize(marker.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                ends.add(ids[0])
        self._end_ids = frozenset(ends)
        self._llm = llm
        log.info("loaded local model %s in %.0f ms", self.source.name, (time.perf_counter() - started) * 1000)

    @property
    def n_ctx(self) -> int:
        return int(self._llm.n_ctx()) if self._llm is not None else self.source.n_ctx

    def prompt_text(self, messages: list[dict[str, Any]]) -> str:
        if self.source.chat_format == GEMMA_FORMAT or self._template is None:
            return gemma_prompt(messages) if self.source.chat_format == GEMMA_FORMAT else _fallback_prompt(messages)
        return render_template(self._template, messages, bos_token=self._bos, eos_token=self._eos)

    def tokenize_prompt(self, messages: list[dict[str, Any]]) -> list[int]:
        text = self.prompt_text(messages)
        # Templates usually write the BOS themselves; add it only when they did not.
        add_bos = not (self._bos and text.startswith(self._bos))
        tokens: list[int] = self._llm.tokenize(text.encode(), add_bos=add_bos, special=True)
        return tokens

    def count_tokens(self, text: str) -> int:
        """The model's own count for a piece of text (no BOS, no special tokens)."""
        self.ensure_loaded()
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=False))

    def generate(self, prompt: list[int], sampling: Sampling, cancelled: threading.Event, emit: Emit) -> None:
        """Blocking: runs the generation loop, emitting text pieces and a final ("done", …)."""
        llm = self._llm
        budget = self.n_ctx - len(prompt)
        if budget <= 0:
            raise PromptTooLong(len(prompt), self.n_ctx)
        limit = min(sampling.max_tokens or budget, budget)
        if sampling.seed is not None:
            llm.set_seed(sampling.seed)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        scanner = StopScanner(sampling.stop)
        produced, finish = 0, "length"
        tokens = llm.generate(
            prompt,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            temp=sampling.temperature,
            repeat_penalty=sampling.repeat_penalty,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty,
            reset=True,
        )
        for token in tokens:
            if cancelled.is_set():
                finish = "cancelled"
                break
            if token in self._end_ids:
                finish = "stop"
                break
            produced += 1
            text, stopped = scanner.feed(decoder.decode(llm.detokenize([token])))
            if text:
                emit(("text", text))
            if stopped:
                finish = "stop"
                break
            if produced >= limit:
                break
        if finish != "stop" or not sampling.stop:
            tail = scanner.flush() + decoder.decode(b"", final=True)
            if tail and finish != "cancelled":
                emit(("text", tail))
        emit(("done", finish, produced))


def _piece(llm: Any, token: int) -> str:
    try:
        return str(llm.detokenize([token], special=True).decode("utf-8", "replace"))
    except Exception:  # some vocabularies have no printable BOS/EOS
        return ""


def _fallback_prompt(messages: list[dict[str, Any]]) -> str:
    """A plain transcript for a GGUF file without a chat template (operator-added base models)."""
    from polyroute.providers.local.prompt import plain_messages

    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in plain_messages(messages)]
    return "\n".join(lines) + "\nAssistant:"
