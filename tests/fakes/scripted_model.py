"""The scripted "model" behind the Anthropic, Gemini and Bedrock fakes: one question, one answer.

Each fake translates its wire request into an `Ask` and the `Answer` back into its wire format, so
the same canonical request gets the same content, tool calls and token counts from every dialect,
and the same as tests/fakes/openai_upstream.py: "Echo: <last user text>", schema-shaped tool
arguments, one token per whitespace-separated word. The upstream model id picks the scenario.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# Scenario ids. `slow-<ms>`, `long-<n>` and the `<fault>-after-<n>` ids take a number: a fault strikes
# after n content events of a stream (0: before any content).
FIXED_SCENARIOS = (
    "mock-model",  # "Echo: <last user text>" (or schema-shaped JSON when a JSON schema is asked for)
    "tool-model",  # calls the chosen (or first) tool with schema-shaped arguments
    "parallel-tool-model",  # calls every tool (at most two) in one turn
    "error-400",
    "error-401",
    "error-429",  # with the dialect's retry hint (Retry-After, RetryInfo); Bedrock sends none
    "error-500",
    "error-503",
    "error-529",  # Anthropic's "overloaded" (other dialects: their 503)
    "garbage",  # 200 with a body / first stream event that is not parseable
    "empty",  # 200 with empty content
    "safety",  # the answer is withheld by a content filter
)
FAULTS = ("stall-after", "cut-after", "malformed-after", "overloaded-after")
_PARAMETRIC = re.compile(r"(slow|long|stall-after|cut-after|malformed-after|overloaded-after)-(\d+)")
ERROR_SCENARIOS = {"error-400": 400, "error-401": 401, "error-429": 429, "error-500": 500, "error-503": 503,
                   "error-529": 529}  # fmt: skip


def words(text: str) -> int:
    return len(text.split())


def pieces(text: str) -> list[str]:
    """Streamed 'tokens' (one per word) whose concatenation is exactly `text`."""
    found = re.findall(r"\s*\S+", text)
    tail = text[len("".join(found)) :]
    if tail and found:
        found[-1] += tail
    return found


def example_value(schema: Any) -> Any:
    """A deterministic value satisfying a simple JSON schema (same rule as the OpenAI fake)."""
    if not isinstance(schema, dict):
        return "x"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    kind = kind.lower() if isinstance(kind, str) else kind
    if kind == "object" or "properties" in schema:
        return {name: example_value(sub) for name, sub in (schema.get("properties") or {}).items()}
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}.get(kind, "test")


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def parse_scenario(model: str) -> tuple[str, int] | None:
    """(kind, number) for a known scenario id, else None (the fake answers 404)."""
    if model in FIXED_SCENARIOS:
        return model, 0
    match = _PARAMETRIC.fullmatch(model)
    return (match.group(1), int(match.group(2))) if match else None


@dataclass(slots=True)
class Ask:
    """What a request asks, whatever its dialect."""

    kind: str
    n: int
    prompt_texts: list[str]  # everything the model reads: system, turns, tool results
    last_user_text: str
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, parameters schema)
    tool_choice: str | None = None  # "auto" | "none" | "required" | a tool name
    json_schema: dict[str, Any] | None = None
    reasoning: bool = False
    max_tokens: int | None = None

    @property
    def prompt_tokens(self) -> int:
        return sum(words(text) for text in self.prompt_texts)


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return compact(self.arguments)


@dataclass(slots=True)
class Answer:
    text_pieces: list[str]
    reasoning_pieces: list[str]
    tool_calls: list[ToolCall]
    finish: str  # "stop" | "length" | "tool_calls" | "content_filter"

    @property
    def text(self) -> str:
        return "".join(self.text_pieces)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_pieces)

    @property
    def reasoning_tokens(self) -> int:
        return len(self.reasoning_pieces)

    @property
    def completion_tokens(self) -> int:
        """Reasoning included; a tool call costs its argument words (at least one), as the OpenAI fake."""
        calls = sum(max(1, words(call.arguments_json)) for call in self.tool_calls)
        return len(self.text_pieces) + calls + self.reasoning_tokens


def _tool_calls(ask: Ask) -> list[ToolCall]:
    if not ask.tools or ask.tool_choice == "none" or ask.kind not in ("tool-model", "parallel-tool-model"):
        return []
    if ask.kind == "parallel-tool-model":
        chosen = ask.tools[:2]
    else:
        chosen = [next((t for t in ask.tools if t[0] == ask.tool_choice), ask.tools[0])]
    return [ToolCall(name, example_value(schema)) for name, schema in chosen]


def _reply_text(ask: Ask) -> str:
    if ask.kind in ("empty", "safety"):
        return ""
    if ask.kind == "long":
        return " ".join(f"w{i}" for i in range(ask.n))
    if ask.kind in FAULTS:
        return " ".join(f"w{i}" for i in range(ask.n + 3))  # more than will ever be sent
    if ask.json_schema is not None:
        return json.dumps(example_value(ask.json_schema))
    return f"Echo: {ask.last_user_text}"


def answer(ask: Ask) -> Answer:
    reasoning = pieces(f"Thinking about: {ask.last_user_text}") if ask.reasoning else []
    calls = _tool_calls(ask)
    if calls:
        return Answer([], reasoning, calls, "tool_calls")
    text = pieces(_reply_text(ask))
    finish = "content_filter" if ask.kind == "safety" else "stop"
    if ask.max_tokens is not None and len(text) > ask.max_tokens:
        text, finish = text[: ask.max_tokens], "length"
    return Answer(text, reasoning, [], finish)


class CacheMemory:
    """Prompt prefixes seen before: the first request with a prefix writes it, later ones read it."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def clear(self) -> None:
        self._seen.clear()

    def use(self, prefix_texts: list[str]) -> tuple[int, int]:
        """(tokens read from cache, tokens written to it) for this prefix."""
        tokens = sum(words(text) for text in prefix_texts)
        if not tokens:
            return 0, 0
        key = "\x00".join(prefix_texts)
        if key in self._seen:
            return tokens, 0
        self._seen.add(key)
        return 0, tokens
