"""Pure readers of an OpenAI-shaped ChatRequest, shared by the encoders of non-OpenAI dialects.

They answer the questions every translation asks the same way: which messages are system prompts,
what parts a message has, what an image part points at, what a tool call's arguments are, which
JSON schema `response_format` asks for, and how much reasoning the client wants.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from polyroute.domain.errors import BadRequest

SYSTEM_ROLES = frozenset({"system", "developer"})
# Forwarded even when an endpoint's supported_parameters list is silent about them (as for OpenAI hosts).
ALWAYS_FORWARD = frozenset({"stop", "user", "parallel_tool_calls", "cache_control"})
# OpenRouter's share of max_tokens spent on reasoning per effort level.
EFFORT_RATIO = {"max": 0.95, "xhigh": 0.95, "high": 0.8, "medium": 0.5, "low": 0.2, "minimal": 0.1}
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)(?:;[\w=.+-]+)*;base64,(?P<data>.*)", re.DOTALL)
_EXTENSION_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}


def supported_params(params: dict[str, Any], supported: tuple[str, ...]) -> dict[str, Any]:
    """The client's parameters an endpoint takes (the rest are dropped, as OpenRouter does).

    An endpoint that lists no parameters takes them all.
    """
    if not supported:
        return params
    return {k: v for k, v in params.items() if k in supported or k in ALWAYS_FORWARD}


def parts_of(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of parts (a plain string is one text part; None is none)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [part for part in content if isinstance(part, dict)]
    raise BadRequest("Invalid request: message content must be a string or an array of parts")


def text_of(content: Any) -> str:
    """The text of a message's content, parts joined without separators."""
    return "".join(str(part.get("text") or "") for part in parts_of(content) if part.get("type") == "text")


def split_system(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system and developer messages, the rest), each in order: other dialects keep them apart."""
    system = [m for m in messages if m.get("role") in SYSTEM_ROLES]
    return system, [m for m in messages if m.get("role") not in SYSTEM_ROLES]


@dataclass(frozen=True, slots=True)
class Image:
    """An image part: a data URL split into media type and base64 data, or a remote URL."""

    url: str
    media_type: str | None = None  # set for data URLs, guessed from the extension otherwise
    data: str | None = None  # base64, for data URLs

    @property
    def is_inline(self) -> bool:
        return self.data is not None


def image_of(part: dict[str, Any]) -> Image:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise BadRequest("Invalid request: an image_url part needs a url")
    match = _DATA_URL.fullmatch(url)
    if match:
        return Image(url, match.group("type"), match.group("data"))
    extension = url.split("?", 1)[0].rsplit(".", 1)[-1].lower()
    return Image(url, _EXTENSION_TYPES.get(extension))


def tool_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call's `arguments` string as the object other dialects want; `{}` when empty."""
    raw = (call.get("function") or {}).get("arguments")
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        name = (call.get("function") or {}).get("name")
        raise BadRequest(f"Invalid request: the arguments of tool call {name!r} are not a JSON object")
    return value


def tool_names_by_id(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call_id -> function name, from the assistant messages' tool calls."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("id"):
                names[str(call["id"])] = str((call.get("function") or {}).get("name") or "")
    return names


def function_tools(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The `function` objects of the request's tools (other tool types have no translation)."""
    tools = params.get("tools") or []
    return [t["function"] for t in tools if isinstance(t, dict) and t.get("type") == "function" and t.get("function")]


def tool_choice_of(params: dict[str, Any]) -> str | None:
    """'auto', 'none', 'required', a function name, or None when the client did not say."""
    choice = params.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return str(name) if name else None
    if choice == "any":
        return "required"
    return str(choice) if choice in ("auto", "none", "required") else None


@dataclass(frozen=True, slots=True)
class JsonSchemaAsk:
    name: str
    schema: dict[str, Any]
    strict: bool


def json_schema_of(params: dict[str, Any]) -> JsonSchemaAsk | None:
    """`response_format: {type: json_schema, json_schema: {name, schema, strict}}`, else None."""
    fmt = params.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema") or {}
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise BadRequest("Invalid request: `response_format.json_schema.schema` must be a JSON schema object")
    return JsonSchemaAsk(str(spec.get("name") or "response"), schema, bool(spec.get("strict")))


def wants_json_object(params: dict[str, Any]) -> bool:
    fmt = params.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") == "json_object"


def stop_sequences(params: dict[str, Any]) -> list[str]:
    stop = params.get("stop")
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop or [] if isinstance(s, str) and s]


@dataclass(frozen=True, slots=True)
class ReasoningAsk:
    """What the client asked of reasoning: an effort level, or an explicit token budget."""

    effort: str = "medium"
    max_tokens: int | None = None
    exclude: bool = False  # reason, but do not return the reasoning text

    def budget(self, max_tokens: int | None, *, minimum: int, maximum: int) -> int:
        """Tokens to spend thinking: the explicit budget, else the effort's share of `max_tokens`."""
        if self.max_tokens is not None:
            wanted = self.max_tokens
        elif max_tokens is not None:
            wanted = int(max_tokens * EFFORT_RATIO.get(self.effort, 0.5))
        else:
            wanted = maximum
        return max(minimum, min(wanted, maximum))


def reasoning_of(params: dict[str, Any]) -> ReasoningAsk | None:
    """`reasoning` ({effort, max_tokens, exclude, enabled}), `reasoning_effort` or `include_reasoning`."""
    reasoning = params.get("reasoning")
    if isinstance(reasoning, dict):
        effort = reasoning.get("effort")
        if reasoning.get("enabled") is False or effort == "none":
            return None
        budget = reasoning.get("max_tokens")
        return ReasoningAsk(
            effort=str(effort) if effort in EFFORT_RATIO else "medium",
            max_tokens=budget if isinstance(budget, int) and budget > 0 else None,
            exclude=bool(reasoning.get("exclude")),
        )
    effort = params.get("reasoning_effort")
    if isinstance(effort, str) and effort in EFFORT_RATIO:
        return ReasoningAsk(effort=effort)
    if params.get("include_reasoning") is True:
        return ReasoningAsk()
    return None


def reasoning_details_of(message: dict[str, Any], fmt: str) -> list[dict[str, Any]]:
    """An assistant message's `reasoning_details` of one format (what the client echoed back)."""
    details = message.get("reasoning_details") or []
    return [d for d in details if isinstance(d, dict) and d.get("format") in (fmt, None)]
