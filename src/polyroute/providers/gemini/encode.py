"""Pure: a ChatRequest -> the JSON body of Gemini's `generateContent` (AI Studio and Vertex alike).

System messages become `systemInstruction`; turns become `contents` with role `user` / `model`;
tool calls and results become `functionCall` / `functionResponse` parts (results are matched to
their function by the calling turn's ids, and consecutive results share one turn); sampling knobs,
`response_format` and `reasoning` go to `generationConfig`. Thought signatures the client echoed
in `reasoning_details` go back on the parts they came with, as Gemini requires for tool use.
"""

from __future__ import annotations

import json
from typing import Any

from polyroute.catalog.types import EndpointSpec
from polyroute.domain.chat import ChatRequest
from polyroute.providers import chat_input as ci
from polyroute.providers.gemini.schema import gemini_schema

REASONING_FORMAT = "google-gemini-v1"
THINKING_MAX_TOKENS = 32_768
_SAMPLING = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}


def encode_request(request: ChatRequest, endpoint: EndpointSpec) -> dict[str, Any]:
    params = ci.supported_params(request.params, endpoint.supported_parameters)
    system_messages, rest = ci.split_system(request.messages)
    body: dict[str, Any] = {"contents": encode_contents(rest)}
    system_text = [ci.text_of(m.get("content")) for m in system_messages]
    if any(system_text):
        body["systemInstruction"] = {"parts": [{"text": text} for text in system_text if text]}
    body.update(encode_tools(params))
    config = generation_config(request, params, endpoint.upstream_id)
    if config:
        body["generationConfig"] = config
    return body


def generation_config(request: ChatRequest, params: dict[str, Any], model: str) -> dict[str, Any]:
    config: dict[str, Any] = {name: params[key] for key, name in _SAMPLING.items() if params.get(key) is not None}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if stops := ci.stop_sequences(request.params):
        config["stopSequences"] = stops
    if (schema := ci.json_schema_of(params)) is not None:
        config["responseMimeType"] = "application/json"
        config["responseSchema"] = gemini_schema(schema.schema)
    elif ci.wants_json_object(params):
        config["responseMimeType"] = "application/json"
    if (reasoning := ci.reasoning_of(params)) is not None:
        config["thinkingConfig"] = thinking_config(reasoning, request.max_tokens, model)
    return config


def thinking_config(reasoning: ci.ReasoningAsk, max_tokens: int | None, model: str) -> dict[str, Any]:
    """Gemini 3 takes a level; Gemini 2.5 a token budget (-1: the model decides)."""
    config: dict[str, Any] = {"includeThoughts": not reasoning.exclude}
    if "gemini-3" in model:
        config["thinkingLevel"] = "high" if reasoning.effort in ("high", "xhigh", "max") else "low"
    elif reasoning.max_tokens is None and max_tokens is None:
        config["thinkingBudget"] = -1
    else:
        config["thinkingBudget"] = reasoning.budget(max_tokens, minimum=128, maximum=THINKING_MAX_TOKENS)
    return config


def encode_tools(params: dict[str, Any]) -> dict[str, Any]:
    functions = ci.function_tools(params)
    if not functions:
        return {}
    declarations = []
    for fn in functions:
        declaration: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            declaration["description"] = fn["description"]
        parameters = fn.get("parameters")
        if isinstance(parameters, dict) and parameters.get("properties"):
            declaration["parameters"] = gemini_schema(parameters)
        declarations.append(declaration)
    out: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = ci.tool_choice_of(params)
    if choice is not None:
        mode = {"none": "NONE", "auto": "AUTO", "required": "ANY"}.get(choice)
        calling: dict[str, Any] = {"mode": mode or "ANY"}
        if mode is None:
            calling["allowedFunctionNames"] = [choice]
        out["toolConfig"] = {"functionCallingConfig": calling}
    return out


def encode_contents(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = ci.tool_names_by_id(messages)
    contents: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            parts, turn_role = _model_parts(message), "model"
        elif role == "tool":
            parts, turn_role = [_function_response(message, names)], "user"
        else:
            parts, turn_role = _user_parts(message.get("content")), "user"
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn_role, "parts": parts})
    return contents


def _user_parts(content: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in ci.parts_of(content):
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            parts.append(_media_part(ci.image_of(part)))
        elif kind == "file" and isinstance((part.get("file") or {}).get("file_data"), str):
            parts.append(_media_part(ci.image_of({"image_url": part["file"]["file_data"]})))
    return parts


def _media_part(media: ci.Image) -> dict[str, Any]:
    if media.is_inline:
        return {"inlineData": {"mimeType": media.media_type, "data": media.data}}
    return {"fileData": {"mimeType": media.media_type or "image/jpeg", "fileUri": media.url}}


def _model_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    signatures: dict[str | None, str] = {}
    for detail in ci.reasoning_details_of(message, REASONING_FORMAT):
        if detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            signatures.setdefault(detail.get("id"), str(detail["data"]))
    parts: list[dict[str, Any]] = []
    if text := ci.text_of(message.get("content")):
        parts.append({"text": text})
    for call in message.get("tool_calls") or []:
        function_call = {"name": (call.get("function") or {}).get("name"), "args": ci.tool_arguments(call)}
        part: dict[str, Any] = {"functionCall": function_call}
        if (signature := signatures.pop(call.get("id"), None)) is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    if parts and None in signatures:  # a signature that came on the turn's first part, not a call
        parts[0].setdefault("thoughtSignature", signatures[None])
    return parts


def _function_response(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    text = ci.text_of(message.get("content"))
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    response = value if isinstance(value, dict) else {"content": text}
    name = names.get(str(message.get("tool_call_id")), "") or str(message.get("name") or "")
    return {"functionResponse": {"name": name, "response": response}}
