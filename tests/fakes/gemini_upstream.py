"""A fake Gemini API: `models/{model}:generateContent` and `:streamGenerateContent?alt=sse` on 127.0.0.1.

Serves the AI Studio paths (`/v1beta/models/...`, key in `x-goog-api-key` or `?key=`) and the Vertex
ones (`/v1/projects/{p}/locations/{l}/publishers/google/models/...` with a Bearer token, and express
mode `/v1/publishers/google/models/...`). It refuses what Gemini refuses: unknown fields (e.g.
`additionalProperties` in a schema), function calls without as many function responses, and on
`gemini-3-*` models function calls echoed without their thought signature. The model id (after an
optional `gemini-3-` prefix) picks the scenario, see tests/fakes/scripted_model.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from typing import Any

from aiohttp import web

from tests.fakes import scripted_model as sm
from tests.fakes.loopback import Frame, LoopbackUpstream

API_KEY = "AIza-fake-gemini-key"
STRICT_PREFIX = "gemini-3-"  # models that require thought signatures on echoed function calls
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
_PART_KEYS = frozenset([*_PART_DATA, "thought", "thoughtSignature"])
_SCHEMA_KEYS = frozenset(
    [
        "type",
        "format",
        "description",
        "title",
        "nullable",
        "enum",
        "required",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minProperties",
        "maxProperties",
        "propertyOrdering",
        "default",
        "example",
        "properties",
        "items",
        "anyOf",
    ]
)
_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
_CONFIG_KEYS = frozenset(
    [
        "temperature",
        "topP",
        "topK",
        "candidateCount",
        "maxOutputTokens",
        "stopSequences",
        "presencePenalty",
        "frequencyPenalty",
        "seed",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "thinkingConfig",
        "responseLogprobs",
        "logprobs",
    ]
)
_TOP_KEYS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings"})


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def normalise(body: dict[str, Any]) -> dict[str, Any]:
    """Proto JSON takes field names in lowerCamelCase or as written in the proto (snake_case); the SDK
    sends some of each. Config objects are rewritten to camelCase (user maps, e.g. schemas, are not)."""
    config = {camel(k): v for k, v in (body.get("generationConfig") or body.get("generation_config") or {}).items()}
    if isinstance(config.get("thinkingConfig"), dict):
        config["thinkingConfig"] = {camel(k): v for k, v in config["thinkingConfig"].items()}
    body = {camel(k): v for k, v in body.items()}
    if config:
        body["generationConfig"] = config
    return body


def error_body(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


def _unknown(where: str, key: str) -> str:
    return f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."


def check_schema(schema: Any, where: str) -> str | None:
    if not isinstance(schema, dict):
        return f"{where}: a schema must be an object"
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            return _unknown(where, key)
        if key == "type" and str(value).upper() not in _TYPES:
            return f"Invalid value at '{where}.type' ({value})"
    for name, sub in (schema.get("properties") or {}).items():
        if (problem := check_schema(sub, f"{where}.properties[{name}]")) is not None:
            return problem
    for key in ("items",):
        if key in schema and (problem := check_schema(schema[key], f"{where}.{key}")) is not None:
            return problem
    return None


def validate(body: dict[str, Any], strict_signatures: bool) -> str | None:
    for key in body:
        if key not in _TOP_KEYS:
            return _unknown("", key)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    calls: list[str] = []
    for i, content in enumerate(contents):
        role = content.get("role", "user")
        if role not in ("user", "model"):
            return f"Please use a valid role: user, model. (contents[{i}].role = {role})"
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
        for part in parts:
            if any(key not in _PART_KEYS for key in part) or sum(key in part for key in _PART_DATA) != 1:
                return f"* GenerateContentRequest.contents[{i}].parts: each part holds exactly one kind of data"
        responses = [p["functionResponse"].get("name") for p in parts if "functionResponse" in p]
        if calls and sorted(responses) != sorted(calls):
            return (
                "Please ensure that the number of function response parts is equal to the number of function "
                "call parts of the function call turn."
            )
        calls = [p["functionCall"].get("name") for p in parts if "functionCall" in p] if role == "model" else []
        if calls and strict_signatures and "thoughtSignature" not in next(p for p in parts if "functionCall" in p):
            return f"Function call is missing a thought_signature in functionCall parts (contents[{i}])."
    for t, tool in enumerate(body.get("tools") or []):
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            if "parameters" in declaration:
                where = f"tools[{t}].function_declarations[{d}].parameters"
                if (problem := check_schema(declaration["parameters"], where)) is not None:
                    return problem
    config = body.get("generationConfig") or {}
    for key in config:
        if key not in _CONFIG_KEYS:
            return _unknown("generation_config", key)
    if "responseSchema" in config and (problem := check_schema(config["responseSchema"], "response_schema")):
        return problem
    thinking = config.get("thinkingConfig") or {}
    if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
        return "You can only set only one of thinking budget and thinking level."
    return None


def _texts(body: dict[str, Any]) -> tuple[list[str], str, int]:
    """(every prompt text, the last user turn's text, how many texts precede the last user turn)."""
    texts = [p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts") or []]
    last_user, last_start = "", 0
    for content in body["contents"]:
        start = len(texts)
        plain = []
        for part in content["parts"]:
            if isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
                plain.append(part["text"])
            elif "functionResponse" in part:
                response = part["functionResponse"].get("response") or {}
                content_text = response.get("content")
                texts.append(content_text if isinstance(content_text, str) else json.dumps(response))
        if content.get("role", "user") == "user" and plain:
            last_user, last_start = " ".join(plain), start
    return texts, last_user, last_start


class FakeGeminiUpstream(LoopbackUpstream):
    thread_name = "fake-gemini-upstream"
    _ids = itertools.count(1)

    def __init__(self, api_key: str = API_KEY, stall_s: float = 600.0) -> None:
        super().__init__(stall_s)
        self.api_key = api_key
        self.cache = sm.CacheMemory()  # implicit caching: a repeated conversation prefix is read from cache

    @property
    def base_url(self) -> str:
        return self.root_url  # the SDK and our adapter append /v1beta/models/...

    def clear(self) -> None:
        super().clear()
        self.cache.clear()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{call}", self._generate)
        app.router.add_post("/v1/models/{call}", self._generate)  # google-genai 3.x's default version
        app.router.add_post("/v1/publishers/google/models/{call}", self._generate)
        app.router.add_post(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{call}", self._generate
        )

    def generate_requests(self) -> list[Any]:
        return [r for r in self.requests if ":generateContent" in r.path or ":streamGenerateContent" in r.path]

    def _authorized(self, request: web.Request) -> bool:
        if "project" in request.match_info:  # Vertex with a project: an OAuth access token
            return request.headers.get("Authorization") == f"Bearer {self.api_key}"
        return self.api_key in (request.headers.get("x-goog-api-key"), request.query.get("key"))

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model, _, action = request.match_info["call"].rpartition(":")
        if action not in ("generateContent", "streamGenerateContent"):
            return web.json_response(error_body(404, f"Method {action} not found"), status=404)
        if not self._authorized(request):
            details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
            return web.json_response(
                error_body(400, "API key not valid. Please pass a valid API key.", details), status=400
            )
        strict = model.startswith(STRICT_PREFIX)
        if not isinstance(body, dict):
            return web.json_response(error_body(400, "Invalid JSON payload received."), status=400)
        body = normalise(body)
        if (problem := validate(body, strict)) is not None:
            return web.json_response(error_body(400, problem), status=400)
        scenario = sm.parse_scenario(model.removeprefix(STRICT_PREFIX))
        if scenario is None:
            return web.json_response(error_body(404, f"models/{model} is not found for API version v1beta"), status=404)
        kind, n = scenario
        if kind in sm.ERROR_SCENARIOS:
            status = {529: 503}.get(sm.ERROR_SCENARIOS[kind], sm.ERROR_SCENARIOS[kind])
            details = (
                [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}] if status == 429 else None
            )
            return web.json_response(error_body(status, f"fake {kind}", details), status=status)
        if kind == "slow":
            await asyncio.sleep(n / 1000)
        response, reply = self._answer(body, model, kind, n)
        if action == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return web.json_response(error_body(400, "this fake streams only with alt=sse"), status=400)
            return await self._stream(request, response, reply, kind, n)
        return await self._complete(request, response, kind)

    def _answer(self, body: dict[str, Any], model: str, kind: str, n: int) -> tuple[dict[str, Any], sm.Answer]:
        texts, last_user, last_start = _texts(body)
        config = body.get("generationConfig") or {}
        thinking = config.get("thinkingConfig") or {}
        calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        allowed = calling.get("allowedFunctionNames") or []
        choice = {"AUTO": "auto", "NONE": "none", "ANY": allowed[0] if len(allowed) == 1 else "required"}
        declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
        ask = sm.Ask(
            kind=kind,
            n=n,
            prompt_texts=[t for t in texts if t],
            last_user_text=last_user,
            tools=[(d["name"], d.get("parameters") or {}) for d in declarations],
            tool_choice=choice.get(calling.get("mode")),
            json_schema=config.get("responseSchema") or config.get("responseJsonSchema"),
            reasoning=bool(thinking) and thinking.get("thinkingBudget") != 0,
            max_tokens=config.get("maxOutputTokens"),
        )
        reply = sm.answer(ask)
        cached, _written = self.cache.use(texts[:last_start])
        parts: list[dict[str, Any]] = []
        if reply.reasoning_pieces and thinking.get("includeThoughts"):
            parts.append({"text": reply.reasoning, "thought": True})
        if reply.text_pieces:
            parts.append({"text": reply.text})
        for call in reply.tool_calls:
            parts.append({"functionCall": {"name": call.name, "args": call.arguments}})
        if reply.tool_calls and (reply.reasoning_pieces or model.startswith(STRICT_PREFIX)):
            first = next(p for p in parts if "functionCall" in p)
            first["thoughtSignature"] = "c2ln" + hashlib.sha256(model.encode()).hexdigest()[:24]
        usage = {
            "promptTokenCount": ask.prompt_tokens,
            "candidatesTokenCount": reply.completion_tokens - reply.reasoning_tokens,
            "totalTokenCount": ask.prompt_tokens + reply.completion_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": ask.prompt_tokens}],
        }
        if reply.reasoning_tokens:
            usage["thoughtsTokenCount"] = reply.reasoning_tokens
        if cached:
            usage["cachedContentTokenCount"] = cached
        content = {"parts": parts, "role": "model"}
        candidate: dict[str, Any] = {"content": content, "finishReason": _FINISH[reply.finish], "index": 0}
        if reply.finish == "content_filter":
            del candidate["content"]
            candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                                           "blocked": True}]  # fmt: skip
        response = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
                    "responseId": f"fakeresp{next(self._ids):06d}"}  # fmt: skip
        return response, reply

    async def _complete(self, request: web.Request, response: dict[str, Any], kind: str) -> web.StreamResponse:
        data = json.dumps(response).encode()
        if kind in ("garbage", "malformed-after"):
            return web.Response(body=b"<html>502 Bad Gateway {oops", content_type="application/json")
        if kind == "overloaded-after":
            return web.json_response(error_body(503, "The model is overloaded. Please try again later."), status=503)
        if kind in ("stall-after", "cut-after"):
            return await self.half_body(request, data, kind, "application/json")
        return web.Response(body=data, content_type="application/json")

    async def _stream(
        self, request: web.Request, response: dict[str, Any], reply: sm.Answer, kind: str, n: int
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if kind == "garbage":
            await resp.write(b"data: {not json at all\r\n\r\n")
            await resp.write_eof()
            return resp
        overloaded = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
        fault_frame = sse(overloaded) if kind == "overloaded-after" else b'data: {"candidates": [\r\n\r\n'
        fault = (kind, n) if kind in sm.FAULTS else None
        return await self.send_frames(request, resp, stream_frames(response, reply), fault, fault_frame)


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\r\n\r\n"


def stream_frames(response: dict[str, Any], reply: sm.Answer) -> list[Frame]:
    """One chunk per word (thoughts, then text), function calls together; the last chunk finishes."""
    candidate = response["candidates"][0]
    usage = response["usageMetadata"]
    partial_usage = {"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"]}
    part_lists: list[list[dict[str, Any]]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "functionCall" in part:
            if part_lists and "functionCall" in part_lists[-1][0]:
                part_lists[-1].append(part)
            else:
                part_lists.append([part])
        else:
            source = reply.reasoning_pieces if part.get("thought") else reply.text_pieces
            part_lists += [[{**part, "text": piece}] for piece in source]
    frames: list[Frame] = []
    head = {"modelVersion": response["modelVersion"], "responseId": response["responseId"]}
    for i, parts in enumerate(part_lists):
        chunk: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        last = i == len(part_lists) - 1
        if last:
            chunk["finishReason"] = candidate["finishReason"]
        frames.append((sse({"candidates": [chunk], "usageMetadata": usage if last else partial_usage, **head}), True))
    if not part_lists:  # nothing to say (empty answer, or withheld): one finishing chunk
        closing = {**candidate, "content": {"parts": [{"text": ""}], "role": "model"}}
        frames.append((sse({**response, "candidates": [closing]}), False))
    return frames
