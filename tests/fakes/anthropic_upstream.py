"""A fake Anthropic Messages API (`POST /v1/messages`): a real aiohttp server on 127.0.0.1.

It checks what the real API checks (`x-api-key`, `anthropic-version`, max_tokens, the thinking budget,
tool_use/tool_result pairing, empty text, trailing whitespace in a prefill, ...) and answers with
Anthropic's JSON or SSE event sequence. The model id picks the scenario (tests/fakes/scripted_model.py);
blocks marked with `cache_control` are written to a prompt cache on first sight and read after.
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

API_KEY = "sk-ant-fake-upstream-key"
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_ERRORS = {
    400: ("invalid_request_error", "messages: this fake rejects the request"),
    401: ("authentication_error", "invalid x-api-key"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}
MODERN_PREFIX = "claude-opus-4-7-"  # a model of the generation with adaptive thinking only (see validate_generation)
_BLOCK_TYPES = {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


def invalid(message: str) -> web.Response:
    return web.json_response(error_body("invalid_request_error", message), status=400)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _text(block: dict[str, Any]) -> str:
    if block.get("type") == "text":
        return str(block.get("text") or "")
    if block.get("type") == "tool_result":
        return " ".join(_text(b) for b in _blocks(block.get("content")))
    return ""


def validate_generation(body: dict[str, Any], modern: bool) -> str | None:
    """Claude 4.7+ (`claude-opus-4-7-*` here): no sampling knobs, no thinking budget, no prefill."""
    thinking = (body.get("thinking") or {}).get("type")
    if not modern:
        return "thinking.type: adaptive thinking is not supported on this model" if thinking == "adaptive" else None
    for name in ("temperature", "top_p", "top_k"):
        if name in body:
            return f"`{name}` is deprecated for this model."
    if thinking == "enabled":
        return "thinking.type.enabled is not supported for this model. Use thinking.type.adaptive instead."
    if body["messages"][-1].get("role") == "assistant":
        return "Prefilling assistant messages is not supported for this model."
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
        return "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
    return None


def validate(body: dict[str, Any]) -> str | None:
    """The first rule the body breaks, worded like the API, or None."""
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "temperature: range: 0 <= temperature <= 1"
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
        if temperature not in (None, 1) or body.get("top_k") is not None:
            return "temperature may only be set to 1 when thinking is enabled"
    names = {t.get("name") for t in body.get("tools") or []}
    choice = body.get("tool_choice")
    if choice is not None:
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
        if choice.get("type") == "tool" and choice.get("name") not in names:
            return f"tool_choice: tool {choice.get('name')!r} not found in tools"
    cache_marks = sum("cache_control" in b for b in _blocks(body.get("system")))
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        blocks = _blocks(message.get("content"))
        if not blocks:
            return f"messages.{i}: all messages must have non-empty content"
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        leading = all(b.get("type") == "tool_result" for b in blocks[: len(results)])
        if pending and (set(results) != pending or not leading):
            return f"messages.{i}: tool_use ids were found without tool_result blocks immediately after"
        if results and not pending:
            return f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: {results[0]}"
        pending = set()
        for j, block in enumerate(blocks):
            cache_marks += "cache_control" in block
            if block.get("type") not in _BLOCK_TYPES:
                return f"messages.{i}.content.{j}.type: unknown block type {block.get('type')!r}"
            if block.get("type") == "text" and not str(block.get("text") or "").strip():
                return f"messages.{i}.content.{j}: text content blocks must contain non-whitespace text"
            if block.get("type") == "image" and not _image_ok(block.get("source") or {}):
                return f"messages.{i}.content.{j}.source: invalid image source"
            if block.get("type") == "tool_use":
                if message["role"] != "assistant" or not isinstance(block.get("input"), dict):
                    return f"messages.{i}.content.{j}: tool_use needs an assistant turn and an object input"
                pending.add(str(block.get("id")))
    final = _blocks(messages[-1].get("content"))[-1]
    if messages[-1]["role"] == "assistant" and final.get("type") == "text" and final["text"] != final["text"].rstrip():
        return "messages: final assistant content cannot end with trailing whitespace"
    if cache_marks > 4:
        return "A maximum of 4 blocks with cache_control may be provided"
    fmt = (body.get("output_config") or {}).get("format")
    if fmt is not None and (fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict)):
        return "output_config.format: a json_schema format needs a schema"
    return None


def _image_ok(source: dict[str, Any]) -> bool:
    if source.get("type") == "base64":
        return str(source.get("media_type")).startswith("image/") and bool(source.get("data"))
    return source.get("type") == "url" and str(source.get("url", "")).startswith(("http://", "https://"))


class FakeAnthropicUpstream(LoopbackUpstream):
    thread_name = "fake-anthropic-upstream"
    _ids = itertools.count(1)

    def __init__(self, api_key: str = API_KEY, stall_s: float = 600.0) -> None:
        super().__init__(stall_s)
        self.api_key = api_key
        self.cache = sm.CacheMemory()

    @property
    def base_url(self) -> str:
        return self.root_url  # the SDK and our adapter append /v1/messages

    def clear(self) -> None:
        super().clear()
        self.cache.clear()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    def message_requests(self) -> list[Any]:
        return [r for r in self.requests if r.path == "/v1/messages"]

    # --- the request -------------------------------------------------------------------------------
    def _ask(self, body: dict[str, Any], kind: str, n: int) -> tuple[sm.Ask, tuple[int, int]]:
        texts: list[str] = [_text(b) for b in _blocks(body.get("system"))]
        marked = [i for i, b in enumerate(_blocks(body.get("system"))) if "cache_control" in b]
        last_user = ""
        for message in body["messages"]:
            for block in _blocks(message.get("content")):
                texts.append(_text(block))
                if "cache_control" in block:
                    marked.append(len(texts) - 1)
            if message["role"] == "user":
                plain = [b.get("text", "") for b in _blocks(message.get("content")) if b.get("type") == "text"]
                last_user = " ".join(plain) if plain else last_user
        cache = self.cache.use(texts[: marked[-1] + 1]) if marked else (0, 0)
        choice = body.get("tool_choice") or {}
        fmt = (body.get("output_config") or {}).get("format") or {}
        ask = sm.Ask(
            kind=kind,
            n=n,
            prompt_texts=[t for t in texts if t],
            last_user_text=last_user,
            tools=[(t["name"], t.get("input_schema") or {}) for t in body.get("tools") or []],
            tool_choice={"any": "required", "tool": choice.get("name")}.get(choice.get("type"), choice.get("type")),
            json_schema=fmt.get("schema"),
            reasoning=(body.get("thinking") or {}).get("type") in ("enabled", "adaptive"),
            max_tokens=body["max_tokens"],
        )
        return ask, cache

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        # The API takes the key as `x-api-key` or (what SDK 2.x sends) `Authorization: Bearer`.
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.api_key not in (request.headers.get("x-api-key"), bearer):
            return web.json_response(error_body(*_ERRORS[401]), status=401)
        if not request.headers.get("anthropic-version"):
            return web.json_response(
                error_body("invalid_request_error", "anthropic-version: header is required"), status=400
            )
        if not isinstance(body, dict):
            return web.json_response(
                error_body("invalid_request_error", "There was an issue with the JSON body"), status=400
            )
        if (problem := validate(body)) is not None:
            return invalid(problem)
        modern = body["model"].startswith(MODERN_PREFIX)
        if (problem := validate_generation(body, modern)) is not None:
            return invalid(problem)
        scenario = sm.parse_scenario(body["model"].removeprefix(MODERN_PREFIX))
        if scenario is None:
            return web.json_response(error_body("not_found_error", f"model: {body['model']}"), status=404)
        kind, n = scenario
        if kind in sm.ERROR_SCENARIOS:
            status = sm.ERROR_SCENARIOS[kind]
            headers = {"retry-after": "1"} if status == 429 else None
            return web.json_response(error_body(*_ERRORS[status]), status=status, headers=headers)
        if kind == "slow":
            await asyncio.sleep(n / 1000)
        ask, cache = self._ask(body, kind, n)
        reply = sm.answer(ask)
        message = self._message(body["model"], ask, reply, cache)
        if body.get("stream"):
            return await self._stream(request, message, reply, kind, n)
        return await self._complete(request, message, kind)

    # --- the answer --------------------------------------------------------------------------------
    def _message(self, model: str, ask: sm.Ask, reply: sm.Answer, cache: tuple[int, int]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.reasoning_pieces:
            signature = "sig_" + hashlib.sha256(reply.reasoning.encode()).hexdigest()[:32]
            content.append({"type": "thinking", "thinking": reply.reasoning, "signature": signature})
        if reply.text_pieces:
            content.append({"type": "text", "text": reply.text})
        for number, call in enumerate(reply.tool_calls):
            content.append({"type": "tool_use", "id": f"toolu_fake{number:02d}", "name": call.name,
                            "input": call.arguments})  # fmt: skip
        read, written = cache
        usage: dict[str, Any] = {
            "input_tokens": ask.prompt_tokens - read - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "output_tokens": reply.completion_tokens,
        }
        if reply.reasoning_pieces:
            usage["output_tokens_details"] = {"thinking_tokens": reply.reasoning_tokens}
        return {
            "id": f"msg_fake{next(self._ids):08d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": _STOP[reply.finish],
            "stop_sequence": None,
            "usage": usage,
        }

    async def _complete(self, request: web.Request, message: dict[str, Any], kind: str) -> web.StreamResponse:
        data = json.dumps(message).encode()
        if kind == "garbage" or kind == "malformed-after":
            return web.Response(body=b"<html>502 Bad Gateway {oops", content_type="application/json")
        if kind == "overloaded-after":
            return web.json_response(error_body(*_ERRORS[529]), status=529)
        if kind in ("stall-after", "cut-after"):
            return await self.half_body(request, data, kind, "application/json")
        return web.Response(body=data, content_type="application/json", headers={"request-id": "req_fake"})

    async def _stream(
        self, request: web.Request, message: dict[str, Any], reply: sm.Answer, kind: str, n: int
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        if kind == "garbage":
            await resp.write(b"event: message_start\ndata: {not json at all\n\n")
            await resp.write_eof()
            return resp
        fault = (kind, n) if kind in sm.FAULTS else None
        fault_frame = (
            event("error", error_body(*_ERRORS[529]))
            if kind == "overloaded-after"
            else b'event: content_block_delta\ndata: {"type": "content_block_delta", "index\n\n'
        )
        return await self.send_frames(request, resp, stream_frames(message, reply), fault, fault_frame)


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def stream_frames(message: dict[str, Any], reply: sm.Answer) -> list[Frame]:
    """Anthropic's event order: message_start, ping, one start/deltas/stop per block, message_delta, message_stop."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    head = {**message, "content": [], "stop_reason": None, "usage": start_usage}
    frames: list[Frame] = [(event("message_start", {"message": head}), False), (event("ping", {}), False)]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "thinking":
            frames.append((event("content_block_start", {"index": index, "content_block":
                                                         {"type": "thinking", "thinking": ""}}), False))  # fmt: skip
            for piece in reply.reasoning_pieces:
                delta = {"type": "thinking_delta", "thinking": piece}
                frames.append((event("content_block_delta", {"index": index, "delta": delta}), True))
            delta = {"type": "signature_delta", "signature": block["signature"]}
            frames.append((event("content_block_delta", {"index": index, "delta": delta}), False))
        elif kind == "text":
            start = {"index": index, "content_block": {"type": "text", "text": ""}}
            frames.append((event("content_block_start", start), False))
            for piece in reply.text_pieces:
                delta = {"type": "text_delta", "text": piece}
                frames.append((event("content_block_delta", {"index": index, "delta": delta}), True))
        else:  # tool_use: the input arrives as JSON text in fragments
            start = {"index": index, "content_block": {**block, "input": {}}}
            frames.append((event("content_block_start", start), False))
            arguments = json.dumps(block["input"])
            for i in range(0, len(arguments), 8):
                delta = {"type": "input_json_delta", "partial_json": arguments[i : i + 8]}
                frames.append((event("content_block_delta", {"index": index, "delta": delta}), True))
        frames.append((event("content_block_stop", {"index": index}), False))
    delta = {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None}, "usage": usage}
    frames.append((event("message_delta", delta), False))
    frames.append((event("message_stop", {}), False))
    return frames
