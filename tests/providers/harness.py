"""The conformance harness: one table of dialects, and a strict assembler of streamed chunks.

Each `Dialect` names its fake upstream, how to point a provider at it, and the few facts that differ
by wire format (native finish reasons, the status of an unknown model, whether a 429 carries a retry
hint). `assemble` rebuilds a whole message from chunks and checks the streaming contract on the way:
role first, tool-call deltas that always carry an `index` (and an id and name when a call starts),
exactly one finish chunk, usage last in a chunk without choices.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from polyroute.catalog.presets import bedrock_credentials
from polyroute.catalog.types import EndpointSpec, Pricing, ProviderSpec
from polyroute.domain.chat import Chunk, Completion, Usage
from polyroute.domain.secret import Secret

ALL_PARAMETERS = ("max_tokens", "temperature", "top_p", "stop", "seed", "tools", "tool_choice", "parallel_tool_calls",
                  "response_format", "structured_outputs", "reasoning", "include_reasoning")  # fmt: skip
# Scenarios every fake serves (tests/fakes/openai_upstream.py knows only these).
COMMON_SCENARIOS = frozenset({"mock-model", "tool-model", "error-400", "error-401", "error-429", "error-500",
                              "error-503", "garbage", "empty", "slow", "stall-after", "cut-after", "long"})  # fmt: skip
EXTRA_SCENARIOS = frozenset({"parallel-tool-model", "safety", "malformed-after", "overloaded-after", "reasoning"})


@dataclass(frozen=True)
class Dialect:
    name: str
    fake_fixture: str  # the pytest fixture holding the running fake
    native_finish: dict[str, str]  # normalised finish reason -> what this wire format says
    unknown_model_status: int
    retry_after_s: float | None  # the retry hint its 429 carries (None: the API sends none)
    overloaded_status: int | None = None  # status of a mid-stream "overloaded" error event
    scenarios: frozenset[str] = COMMON_SCENARIOS | EXTRA_SCENARIOS
    options: dict[str, str] = field(default_factory=dict)
    reports_reasoning_tokens: bool = True  # Converse's usage has no reasoning count
    variant: str = ""  # a second row for the same wire format (e.g. Claude 4.7+ rules)
    model_prefix: str = ""  # Bedrock ids name the vendor: "anthropic.<scenario>" (and Claude can reason)

    def spec(self, fake: Any) -> ProviderSpec:
        slug = f"conf-{self.name}"
        if self.name == "bedrock":
            key, options = bedrock_credentials(fake.env), {"region": fake.region, **self.options}
        else:
            key, options = Secret(fake.api_key), dict(self.options)
        return ProviderSpec(slug, slug, self.name, fake.base_url, api_key_env="KEY", api_key=key, options=options)

    @property
    def id(self) -> str:
        return f"{self.name}-{self.variant}" if self.variant else self.name

    @property
    def lean(self) -> bool:
        return self.variant == "lean"

    def supports(self, scenario: str) -> bool:
        return scenario in self.scenarios


OPENAI = Dialect("openai", "openai_fake", {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}, 404, 1.0,
                 scenarios=COMMON_SCENARIOS)  # fmt: skip
ANTHROPIC = Dialect(
    "anthropic", "anthropic_fake",
    {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"},
    404, 1.0, overloaded_status=529,
)  # fmt: skip
GEMINI = Dialect(
    "gemini", "gemini_fake",
    {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"},
    404, 1.0, overloaded_status=503, options={"fetch_private_images": "true"},
)  # fmt: skip
BEDROCK = Dialect(
    "bedrock", "bedrock_fake",
    {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "content_filtered"},
    400, None, overloaded_status=503, options={"fetch_private_images": "true"}, model_prefix="us.anthropic.",
    reports_reasoning_tokens=False,
)  # fmt: skip
# Claude 4.7+ (the fakes apply its rules to `claude-opus-4-7-<scenario>`): adaptive thinking, no sampling knobs.
ANTHROPIC_47 = dataclasses.replace(ANTHROPIC, variant="claude47", model_prefix="claude-opus-4-7-")
BEDROCK_47 = dataclasses.replace(BEDROCK, variant="claude47", model_prefix="us.anthropic.claude-opus-4-7-")
# The OpenAI dialect through the lean HTTP client (the default while tracing is off; ADR 0005); the
# plain `openai` row goes through aiohttp, as it does with tracing on.
OPENAI_LEAN = dataclasses.replace(OPENAI, variant="lean")
# `local` (in-process llama.cpp) is not in this table yet: its engineer adds it with its own fake-free model.
DIALECTS = (OPENAI, OPENAI_LEAN, ANTHROPIC, ANTHROPIC_47, GEMINI, BEDROCK, BEDROCK_47)


def endpoint(dialect: Dialect, scenario: str, **overrides: Any) -> EndpointSpec:
    fields: dict[str, Any] = {"supported_parameters": ALL_PARAMETERS, "input_modalities": ("text", "image")}
    fields.update(overrides)
    upstream_id = dialect.model_prefix + scenario
    return EndpointSpec("conf/model", f"conf-{dialect.name}", upstream_id, Pricing(1, 1), 8192, **fields)


def dialects_for(scenario: str) -> list[Dialect]:
    return [d for d in DIALECTS if d.supports(scenario)]


@dataclass
class Result:
    """One answer, streamed or not, in comparable form."""

    message: dict[str, Any]
    finish_reason: str | None
    native_finish_reason: str | None
    usage: Usage | None
    content_chunks: int = 0

    def comparable(self) -> dict[str, Any]:
        """What must be identical streamed and not: content, parsed tool arguments, reasoning, finish, usage."""
        message = self.message
        calls = [
            {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"] or "{}")}
            for c in message.get("tool_calls") or []
        ]
        details = [
            {k: v for k, v in d.items() if k != "index" and v not in (None, "")}
            for d in message.get("reasoning_details") or []
        ]
        return {
            "content": message.get("content") or "",
            "tool_calls": calls,
            "reasoning": message.get("reasoning"),
            "reasoning_details": details,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.native_finish_reason,
            "usage": self.usage,
        }


def from_completion(completion: Completion) -> Result:
    choice = completion.choices[0]
    return Result(choice["message"], choice["finish_reason"], choice["native_finish_reason"], completion.usage)


def assemble(chunks: list[Chunk]) -> Result:
    assert chunks, "no chunks"
    assert chunks[0].choices and chunks[0].choices[0]["delta"].get("role") == "assistant", "role must come first"
    content, reasoning = "", ""
    details: dict[int, dict[str, Any]] = {}
    calls: dict[int, dict[str, Any]] = {}
    finishes: list[tuple[str, str | None]] = []
    usage: Usage | None = None
    content_chunks = 0
    for position, chunk in enumerate(chunks):
        if chunk.usage is not None:
            assert position == len(chunks) - 1 and not chunk.choices, "usage comes last, in a chunk without choices"
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice["delta"]
            has = bool(delta.get("content") or delta.get("reasoning") or delta.get("tool_calls")
                       or delta.get("reasoning_details"))  # fmt: skip
            assert chunk.has_content == has, f"has_content wrong on {chunk}"
            content_chunks += has
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning") or ""
            for detail in delta.get("reasoning_details") or []:
                merged = details.setdefault(detail["index"], {k: v for k, v in detail.items() if k != "text"})
                merged["text"] = merged.get("text", "") + (detail.get("text") or "")
                for key in ("signature", "data", "id"):
                    if detail.get(key):
                        merged[key] = detail[key]
            for call in delta.get("tool_calls") or []:
                assert isinstance(call.get("index"), int), f"tool-call delta without index: {call}"
                if call["index"] not in calls:
                    assert call.get("id") and call["function"].get("name"), "a new tool call needs id and name"
                    function = {"name": call["function"]["name"], "arguments": ""}
                    calls[call["index"]] = {"id": call["id"], "type": "function", "function": function}
                calls[call["index"]]["function"]["arguments"] += call["function"].get("arguments") or ""
            if choice.get("finish_reason"):
                finishes.append((choice["finish_reason"], choice.get("native_finish_reason")))
    assert len(finishes) == 1, f"expected one finish chunk, got {finishes}"
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if reasoning or details:
        message["reasoning"] = reasoning or None
        message["reasoning_details"] = [_tidy(details[i]) for i in sorted(details)]
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return Result(message, finishes[0][0], finishes[0][1], usage, content_chunks)


def _tidy(detail: dict[str, Any]) -> dict[str, Any]:
    if detail.get("type") == "reasoning.encrypted":
        detail.pop("text", None)
    return detail
