"""A chat request and its results as the core sees them, independent of any wire dialect.

Choices stay in OpenAI's shape (plain dicts) because that is the dialect we answer in: the
OpenAI-compatible adapter passes them through untouched and other adapters translate into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# OpenRouter's normalised finish reasons; adapters map native values onto these.
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "error"})


@dataclass(slots=True)
class Attribution:
    """The calling app, from `HTTP-Referer` and `X-Title` / `X-OpenRouter-Title`."""

    referer: str | None = None
    title: str | None = None


@dataclass(slots=True)
class ChatRequest:
    """A validated chat completion request.

    `params` holds the sampling/tool parameters to forward (temperature, top_p, stop, seed,
    tools, tool_choice, response_format, ...) exactly as the client sent them; `max_tokens`
    is lifted out because pricing and limits need it.
    """

    model: str | None
    messages: list[dict[str, Any]]
    stream: bool = False
    max_tokens: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    provider: dict[str, Any] | None = None
    user: str | None = None
    attribution: Attribution = field(default_factory=Attribution)


@dataclass(slots=True)
class Usage:
    """Token counts of one generation, as the upstream (or local tokenizer) reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Completion:
    """A whole (non-streamed) result: OpenAI-shaped choices with `native_finish_reason` set."""

    choices: list[dict[str, Any]]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


@dataclass(slots=True)
class Chunk:
    """One streamed piece: OpenAI-shaped chunk choices (`index`, `delta`, `finish_reason`).

    `has_content` is true when any delta carries text, reasoning, a refusal or a tool call:
    the line after which the gateway may no longer fail over silently.
    """

    choices: list[dict[str, Any]]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    has_content: bool = False
