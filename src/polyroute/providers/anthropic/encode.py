"""Pure: a ChatRequest -> the JSON body of Anthropic's Messages API (`POST /v1/messages`).

System and developer messages become `system`; tool calls and results become `tool_use` and
`tool_result` blocks (consecutive results share one user turn, as parallel tool use requires);
`cache_control` on a part stays on its block; `reasoning` becomes adaptive thinking with an effort
on current models, or a thinking budget by OpenRouter's rule on older ones (see models.py); echoed
`reasoning_details` become thinking blocks again, signatures intact.
"""

from __future__ import annotations

from typing import Any

from polyroute.catalog.types import EndpointSpec
from polyroute.domain.chat import ChatRequest
from polyroute.providers import chat_input as ci
from polyroute.providers.anthropic.models import ClaudeTraits, claude_traits, effort_of

DEFAULT_MAX_TOKENS = 4096  # when neither the client nor the endpoint says; Anthropic requires one
REASONING_FORMAT = "anthropic-claude-v1"
THINKING_MIN_TOKENS = 1024
THINKING_MAX_TOKENS = 128_000


def encode_request(request: ChatRequest, endpoint: EndpointSpec, *, stream: bool) -> dict[str, Any]:
    params = ci.supported_params(request.params, endpoint.supported_parameters)
    system_messages, rest = ci.split_system(request.messages)
    system = [block for m in system_messages for block in _text_blocks(m.get("content"))]
    messages = encode_messages(rest)
    if not messages:  # a system-only request: Anthropic needs one user turn
        messages, system = [{"role": "user", "content": system or [{"type": "text", "text": "."}]}], []
    body: dict[str, Any] = {"model": endpoint.upstream_id, "messages": messages}
    if system:
        body["system"] = system
    traits = claude_traits(endpoint.upstream_id)
    reasoning = ci.reasoning_of(params)
    body["max_tokens"], thinking = _thinking(request, endpoint, reasoning, traits)
    output_config: dict[str, Any] = {}
    if thinking is not None:
        body["thinking"] = thinking
        if thinking["type"] == "adaptive" and reasoning is not None:
            output_config["effort"] = effort_of(reasoning, body["max_tokens"])
    elif traits.sampling:  # thinking takes no temperature / top_k; newer models take none at all
        if isinstance(params.get("temperature"), int | float):
            body["temperature"] = min(float(params["temperature"]), 1.0)
        for name in ("top_p", "top_k"):
            if params.get(name) is not None:
                body[name] = params[name]
    if stops := ci.stop_sequences(request.params):
        body["stop_sequences"] = stops
    body.update(encode_tools(params))
    if (schema := ci.json_schema_of(params)) is not None:
        output_config["format"] = {"type": "json_schema", "schema": strict_schema(schema.schema)}
    if output_config:
        body["output_config"] = output_config
    if isinstance(params.get("user"), str):
        body["metadata"] = {"user_id": params["user"]}
    if isinstance(params.get("cache_control"), dict):  # automatic caching: Anthropic places the breakpoint
        body["cache_control"] = params["cache_control"]
    if stream:
        body["stream"] = True
    return body


def _thinking(
    request: ChatRequest, endpoint: EndpointSpec, reasoning: ci.ReasoningAsk | None, traits: ClaudeTraits
) -> tuple[int, dict[str, Any] | None]:
    """(max_tokens, thinking): a budget must stay below max_tokens, as Anthropic requires."""
    ceiling = endpoint.max_completion_tokens
    max_tokens = request.max_tokens or ceiling or DEFAULT_MAX_TOKENS
    if reasoning is None:
        return max_tokens, None
    if traits.adaptive_thinking:
        return max_tokens, {"type": "adaptive"}
    budget = reasoning.budget(max_tokens, minimum=THINKING_MIN_TOKENS, maximum=THINKING_MAX_TOKENS)
    if max_tokens <= budget:  # the client's max_tokens is for the answer: thinking comes on top
        max_tokens = budget + max_tokens
    if ceiling and max_tokens > ceiling:
        max_tokens = ceiling
        budget = max(THINKING_MIN_TOKENS, min(budget, ceiling - 1))
    return max_tokens, {"type": "enabled", "budget_tokens": budget}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's structured outputs want `additionalProperties: false` on every object."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if isinstance(value, dict):
            value = (
                strict_schema(value)
                if key not in ("properties", "$defs", "definitions")
                else {name: strict_schema(sub) if isinstance(sub, dict) else sub for name, sub in value.items()}
            )
        elif isinstance(value, list):
            value = [strict_schema(v) if isinstance(v, dict) else v for v in value]
        out[key] = value
    if out.get("type") == "object" or "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def encode_tools(params: dict[str, Any]) -> dict[str, Any]:
    functions = ci.function_tools(params)
    if not functions:
        return {}
    tools = []
    for fn in functions:
        tool: dict[str, Any] = {
            "name": fn["name"],
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        if fn.get("description"):
            tool["description"] = fn["description"]
        tools.append(tool)
    choice = ci.tool_choice_of(params)
    out: dict[str, Any] = {"tools": tools}
    if choice == "none":
        out["tool_choice"] = {"type": "none"}
        return out
    tool_choice: dict[str, Any] = {"type": "auto"}
    if choice == "required":
        tool_choice = {"type": "any"}
    elif choice not in (None, "auto"):
        tool_choice = {"type": "tool", "name": choice}
    if params.get("parallel_tool_calls") is False:
        tool_choice["disable_parallel_tool_use"] = True
    if choice is not None or "disable_parallel_tool_use" in tool_choice:
        out["tool_choice"] = tool_choice
    return out


def encode_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI turns -> Anthropic turns; consecutive turns of one role merge (tool results with user)."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            blocks = _assistant_blocks(message)
            turn_role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(message)]
            turn_role = "user"
        else:
            blocks = _user_blocks(message.get("content"))
            turn_role = "user"
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    _trim_prefill(turns)
    return turns


def _trim_prefill(turns: list[dict[str, Any]]) -> None:
    """A final assistant turn (prefill) may not end with whitespace: Anthropic refuses it."""
    if turns and turns[-1]["role"] == "assistant":
        last = turns[-1]["content"][-1]
        if last.get("type") == "text":
            last["text"] = last["text"].rstrip()
            if not last["text"]:
                turns[-1]["content"].pop()
                if not turns[-1]["content"]:
                    turns.pop()


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    blocks = []
    for part in ci.parts_of(content):
        if part.get("type") == "text" and part.get("text"):
            blocks.append(_with_cache_control({"type": "text", "text": part["text"]}, part))
    return blocks


def _with_cache_control(block: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in ci.parts_of(content):
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            blocks.append(_with_cache_control({"type": "text", "text": part["text"]}, part))
        elif kind == "image_url":
            blocks.append(_with_cache_control(_image_block(ci.image_of(part)), part))
        elif kind == "file" and (document := _document_block(part)) is not None:
            blocks.append(_with_cache_control(document, part))
    return blocks


def _image_block(image: ci.Image) -> dict[str, Any]:
    if image.is_inline:
        source = {"type": "base64", "media_type": image.media_type, "data": image.data}
    else:
        source = {"type": "url", "url": image.url}
    return {"type": "image", "source": source}


def _document_block(part: dict[str, Any]) -> dict[str, Any] | None:
    data = (part.get("file") or {}).get("file_data")
    if not isinstance(data, str):
        return None
    image = ci.image_of({"image_url": data})  # the same data-URL rule
    if not image.is_inline:
        return {"type": "document", "source": {"type": "url", "url": image.url}}
    return {"type": "document", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}}


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for detail in ci.reasoning_details_of(message, REASONING_FORMAT):
        if detail.get("type") == "reasoning.text" and detail.get("signature"):
            blocks.append({"type": "thinking", "thinking": detail.get("text") or "", "signature": detail["signature"]})
        elif detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            blocks.append({"type": "redacted_thinking", "data": detail["data"]})
    blocks.extend(_text_blocks(message.get("content")))
    for call in message.get("tool_calls") or []:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": (call.get("function") or {}).get("name"),
                "input": ci.tool_arguments(call),
            }
        )
    return blocks


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, str):
        result["content"] = content
    else:
        result["content"] = _user_blocks(content)
    return result
