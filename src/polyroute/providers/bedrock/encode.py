"""Pure: a ChatRequest -> the JSON body of Bedrock's Converse / ConverseStream.

System messages become `system`; turns become `messages` of content blocks (`text`, `image` with
inline bytes, `toolUse`, `toolResult`, `reasoningContent`); a part's `cache_control` becomes a
`cachePoint` block after it. `response_format: json_schema` becomes `outputConfig.textFormat`.
Reasoning is model-specific: Claude takes Anthropic's `thinking` in `additionalModelRequestFields`
(adaptive with `outputConfig.effort` from Claude 4.6 on, see anthropic/models.py), Nova a
`reasoningConfig`.
"""

from __future__ import annotations

import json
from typing import Any

from polyroute.catalog.types import EndpointSpec
from polyroute.domain.chat import ChatRequest
from polyroute.domain.errors import BadRequest
from polyroute.providers import chat_input as ci
from polyroute.providers.anthropic.encode import REASONING_FORMAT, THINKING_MAX_TOKENS, THINKING_MIN_TOKENS
from polyroute.providers.anthropic.models import claude_traits, effort_of

CACHE_POINT = {"cachePoint": {"type": "default"}}
DEFAULT_MAX_TOKENS = 4096
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def is_claude(model_id: str) -> bool:
    return "anthropic." in model_id or model_id.startswith("anthropic")


def encode_request(request: ChatRequest, endpoint: EndpointSpec) -> dict[str, Any]:
    params = ci.supported_params(request.params, endpoint.supported_parameters)
    system_messages, rest = ci.split_system(request.messages)
    body: dict[str, Any] = {"messages": encode_messages(rest)}
    system = [block for m in system_messages for block in _text_blocks(m.get("content"))]
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    output: dict[str, Any] = {}
    model = endpoint.upstream_id
    traits = claude_traits(model) if is_claude(model) else None
    max_tokens = request.max_tokens
    reasoning = ci.reasoning_of(params)
    if reasoning is not None and traits is not None:
        max_tokens = max_tokens or endpoint.max_completion_tokens or DEFAULT_MAX_TOKENS
        if traits.adaptive_thinking:
            extra["thinking"] = {"type": "adaptive"}
            output["effort"] = effort_of(reasoning, max_tokens)
        else:
            budget = reasoning.budget(max_tokens, minimum=THINKING_MIN_TOKENS, maximum=THINKING_MAX_TOKENS)
            max_tokens = max_tokens if max_tokens > budget else budget + max_tokens
            extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
    elif reasoning is not None and "nova" in model:
        effort = {"minimal": "low", "xhigh": "high", "max": "high"}.get(reasoning.effort, reasoning.effort)
        extra["reasoningConfig"] = {"type": "enabled", "maxReasoningEffort": effort}
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    # Claude thinks only at its default temperature, and Claude 4.7+ takes no sampling knobs at all.
    if "thinking" not in extra and (traits is None or traits.sampling):
        if params.get("temperature") is not None:
            inference["temperature"] = params["temperature"]
        if params.get("top_p") is not None:
            inference["topP"] = params["top_p"]
        if params.get("top_k") is not None and traits is not None:
            extra["top_k"] = params["top_k"]
    if stops := ci.stop_sequences(request.params):
        inference["stopSequences"] = stops
    if inference:
        body["inferenceConfig"] = inference
    if extra:
        body["additionalModelRequestFields"] = extra
    if isinstance(params.get("cache_control"), dict) and body["messages"]:
        last = body["messages"][-1]["content"]  # automatic caching: a breakpoint after the whole prompt
        if "cachePoint" not in last[-1]:
            last.append(dict(CACHE_POINT))
    if (tool_config := encode_tools(params, body["messages"])) is not None:
        body["toolConfig"] = tool_config
    if (schema := ci.json_schema_of(params)) is not None:
        definition = {"schema": json.dumps(schema.schema, separators=(",", ":")), "name": schema.name}
        output["textFormat"] = {"type": "json_schema", "structure": {"jsonSchema": definition}}
    if output:
        body["outputConfig"] = output
    return body


def encode_tools(params: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """`toolConfig`; Converse has no "none" choice: then tools go only if the history needs them."""
    functions = ci.function_tools(params)
    if not functions:
        return None
    choice = ci.tool_choice_of(params)
    if choice == "none" and not _uses_tools(messages):
        return None
    tools = []
    for fn in functions:
        spec: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            spec["description"] = fn["description"]
        spec["inputSchema"] = {"json": fn.get("parameters") or {"type": "object", "properties": {}}}
        tools.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": tools}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice not in (None, "none"):
        config["toolChoice"] = {"tool": {"name": choice}}
    return config


def _uses_tools(messages: list[dict[str, Any]]) -> bool:
    return any("toolUse" in block or "toolResult" in block for m in messages for block in m["content"])


def encode_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            blocks, turn_role = _assistant_blocks(message), "assistant"
        elif role == "tool":
            result = {
                "toolUseId": message.get("tool_call_id"),
                "content": [{"text": ci.text_of(message.get("content"))}],
            }
            blocks, turn_role = [{"toolResult": result}], "user"
        else:
            blocks, turn_role = _user_blocks(message.get("content")), "user"
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    if turns and turns[-1]["role"] == "assistant" and "text" in turns[-1]["content"][-1]:
        last = turns[-1]["content"]  # a prefill may not end with whitespace
        last[-1]["text"] = last[-1]["text"].rstrip()
        if not last[-1]["text"]:
            last.pop()
            if not last:
                turns.pop()
    return turns


def _cache_point(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(CACHE_POINT)] if isinstance(part.get("cache_control"), dict) else []


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in ci.parts_of(content):
        if part.get("type") == "text" and part.get("text"):
            blocks += [{"text": part["text"]}, *_cache_point(part)]
    return blocks


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in ci.parts_of(content):
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            blocks += [{"text": part["text"]}, *_cache_point(part)]
        elif kind == "image_url":
            blocks += [_image_block(ci.image_of(part)), *_cache_point(part)]
    return blocks


def _image_block(image: ci.Image) -> dict[str, Any]:
    image_format = _IMAGE_FORMATS.get(image.media_type or "")
    if not image.is_inline or image_format is None:
        raise BadRequest("Invalid request: Bedrock takes png, jpeg, gif or webp images as data or http(s) URLs")
    return {"image": {"format": image_format, "source": {"bytes": image.data}}}


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for detail in ci.reasoning_details_of(message, REASONING_FORMAT):
        if detail.get("type") == "reasoning.text" and detail.get("signature"):
            text = {"text": detail.get("text") or "", "signature": detail["signature"]}
            blocks.append({"reasoningContent": {"reasoningText": text}})
        elif detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            blocks.append({"reasoningContent": {"redactedContent": detail["data"]}})
    blocks.extend(_text_blocks(message.get("content")))
    for call in message.get("tool_calls") or []:
        name = (call.get("function") or {}).get("name")
        blocks.append({"toolUse": {"toolUseId": call.get("id"), "name": name, "input": ci.tool_arguments(call)}})
    return blocks
