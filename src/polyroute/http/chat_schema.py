"""Validating a `POST /chat/completions` body into a ChatRequest.

msgspec checks the types and ranges of the fields we interpret and names the failing field
(`$.messages[0].role`); everything else the client sent is kept as-is for the upstream.
Both OpenRouter spec generations are accepted (e.g. legacy `prompt`, `max_completion_tokens`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from polyroute.domain.chat import Attribution, ChatRequest
from polyroute.domain.errors import BadRequest

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class _Message(msgspec.Struct, forbid_unknown_fields=False):
    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class _Function(msgspec.Struct, forbid_unknown_fields=False):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class _Tool(msgspec.Struct, forbid_unknown_fields=False):
    type: Literal["function"]
    function: _Function


class _ChatBody(msgspec.Struct, forbid_unknown_fields=False):
    """The fields we check. Unknown fields pass through untouched."""

    model: str | None = None
    messages: list[_Message] | None = None
    prompt: str | None = None
    stream: bool = False
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None
    min_p: Unit | None = None
    top_a: Unit | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    repetition_penalty: Annotated[float, msgspec.Meta(gt=0, le=2)] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=1)] | None = None
    tools: list[_Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    logit_bias: dict[str, float] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    models: list[str] | None = None
    route: str | None = None
    provider: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None


# Client parameters forwarded to the upstream (filtered per endpoint by the adapter).
PASSTHROUGH = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "top_a",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "seed",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "parallel_tool_calls",
    "user",
    "reasoning",
    "reasoning_effort",
    "verbosity",
    "prediction",
    "structured_outputs",
    "web_search_options",
    "cache_control",
    "include_reasoning",
)
_PASSTHROUGH_NAMES = frozenset(PASSTHROUGH)
_TOOL_CHOICE_WORDS = ("none", "auto", "required", "any")
_MAX_STOP_SEQUENCES = 4


def _describe(error: msgspec.ValidationError) -> str:
    text = str(error)
    message, _, where = text.partition(" - at `")
    if where:
        field = where.rstrip("`").removeprefix("$.") or "body"
        return f"Invalid request: `{field}`: {message}"
    return f"Invalid request: {message}"


def _check_semantics(body: _ChatBody, raw: dict[str, Any]) -> None:
    if body.messages is None and body.prompt is None:
        raise BadRequest("Invalid request: `messages` is required (or the legacy `prompt`)")
    if body.messages is not None and not body.messages:
        raise BadRequest("Invalid request: `messages` must contain at least one message")
    if isinstance(body.stop, list) and len(body.stop) > _MAX_STOP_SEQUENCES:
        raise BadRequest(f"Invalid request: `stop` accepts at most {_MAX_STOP_SEQUENCES} sequences")
    if isinstance(body.tool_choice, str) and body.tool_choice not in _TOOL_CHOICE_WORDS:
        raise BadRequest("Invalid request: `tool_choice` must be none, auto, required or a function object")
    if body.model is not None and not body.model.strip():
        raise BadRequest("Invalid request: `model` must not be empty")
    for position, message in enumerate(raw.get("messages") or []):
        if message.get("role") == "tool" and not message.get("tool_call_id"):
            raise BadRequest(f"Invalid request: `messages[{position}].tool_call_id` is required for tool messages")


def parse_chat_request(raw: Any, attribution: Attribution) -> ChatRequest:
    if not isinstance(raw, dict):
        raise BadRequest("Invalid request: the body must be a JSON object")
    try:
        body = msgspec.convert(raw, _ChatBody)
    except msgspec.ValidationError as error:
        raise BadRequest(_describe(error)) from None
    _check_semantics(body, raw)
    messages = raw.get("messages") or [{"role": "user", "content": body.prompt}]
    models = list(body.models or [])
    if body.model is None and models:
        models = models[1:]
    return ChatRequest(
        model=body.model or (body.models[0] if body.models else None),
        messages=messages,
        stream=body.stream,
        max_tokens=body.max_tokens or body.max_completion_tokens,
        # The body's few fields looked up in the set, not the ~40 names each looked up in the body.
        params={name: value for name, value in raw.items() if name in _PASSTHROUGH_NAMES and value is not None},
        models=models,
        provider=body.provider,
        user=body.user,
        attribution=attribution,
    )
