"""A fake OpenAI Chat Completions upstream: a real aiohttp server on 127.0.0.1 in its own thread.

The upstream model id in the request body picks the behaviour (see `SCENARIOS`), so one server backs
many catalog models. Token counts are whitespace word counts, so tests can predict usage and cost.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackUpstream, RecordedRequest

# Fixed scenario ids; `slow-<ms>`, `stall-after-<n>`, `cut-after-<n>`, `long-<n>` take a number.
FIXED_SCENARIOS = (
    "mock-model",  # "Echo: <last user text>"
    "tool-model",  # calls the first (or the `tool_choice`d) tool with schema-shaped JSON args
    "error-400",
    "error-401",
    "error-429",  # with Retry-After: 1
    "error-500",
    "error-503",
    "garbage",  # 200 with a body that is not JSON / an SSE `data:` line that is not JSON
    "empty",  # 200 with empty content
    "preamble-then-500",  # stream: the role chunk, then an error event (500) and a cut, no content
)
PARAMETRIC_SCENARIOS = ("slow-", "stall-after-", "cut-after-", "long-", "drip-")  # drip-<n>: n tokens, 1 per s
SCENARIOS = FIXED_SCENARIOS + tuple(p + "<n>" for p in PARAMETRIC_SCENARIOS)
_PARAMETRIC = re.compile(r"(slow|stall-after|cut-after|long|drip)-(\d+)")
SYSTEM_FINGERPRINT = "fp_fake0001"

_ERRORS: dict[str, tuple[int, str, str, str | None]] = {  # scenario -> status, message, type, code
    "error-400": (400, "Invalid value for 'messages': this fake rejects it.", "invalid_request_error", None),
    "error-401": (401, "Incorrect API key provided: sk-rev***oked.", "invalid_request_error", "invalid_api_key"),
    "error-429": (429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    "error-500": (500, "The server had an error while processing your request.", "server_error", None),
    "error-503": (503, "The engine is currently overloaded, please try again later.", "server_error", None),
}


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text parts carry words
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _words(text: str) -> int:
    return len(text.split())


def _pieces(text: str) -> list[str]:
    """Split text into streamed 'tokens' (one per word) whose concatenation is exactly `text`."""
    pieces = re.findall(r"\s*\S+", text)
    tail = text[len("".join(pieces)) :]
    if tail and pieces:
        pieces[-1] += tail
    return pieces


def _example_value(schema: Any) -> Any:
    """A deterministic value that satisfies a simple JSON schema."""
    if not isinstance(schema, dict):
        return "x"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: _example_value(sub) for name, sub in props.items()}
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}.get(kind, "test")


class _Exchange:
    """One chat request: what was asked, and the shapes of the answer."""

    _ids = itertools.count(1)

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.model: str = body["model"]
        self.id = f"chatcmpl-fake{next(self._ids):06d}"
        self.created = int(time.time())
        self.prompt_tokens = sum(_words(_text_of(m.get("content"))) for m in body["messages"])
        self.limit: int | None = body.get("max_completion_tokens") or body.get("max_tokens")

    def tool_call(self) -> dict[str, Any] | None:
        tools = [t for t in self.body.get("tools") or [] if t.get("type") == "function"]
        if not tools or self.body.get("tool_choice") == "none":
            return None
        chosen = self.body.get("tool_choice")
        wanted = chosen.get("function", {}).get("name") if isinstance(chosen, dict) else None
        fn = next((t["function"] for t in tools if t["function"]["name"] == wanted), tools[0]["function"])
        args = json.dumps(_example_value(fn.get("parameters") or {}), separators=(",", ":"))
        return {"id": f"call_{self.id[-6:]}", "type": "function", "function": {"name": fn["name"], "arguments": args}}

    def reply_pieces(self, text: str) -> tuple[list[str], str]:
        pieces = _pieces(text)
        if self.limit is not None and len(pieces) > self.limit:
            return pieces[: self.limit], "length"
        return pieces, "stop"

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def completion(self, message: dict[str, Any], finish: str, completion_tokens: int) -> dict[str, Any]:
        message = {"role": "assistant", "content": None, "refusal": None, "annotations": [], **message}
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": self.usage(completion_tokens),
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    def chunk(self, delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if (self.body.get("stream_options") or {}).get("include_usage"):
            chunk["usage"] = None  # OpenAI sends an explicit null until the final usage chunk
        chunk.update(extra)
        return chunk


class FakeOpenAIUpstream(LoopbackUpstream):
    """Context manager running the fake on an ephemeral loopback port; see the module docstring."""

    thread_name = "fake-openai-upstream"

    def __init__(self, api_key: str = "sk-fake-upstream-key", stall_s: float = 600.0) -> None:
        super().__init__(stall_s)
        self.api_key = api_key
        self.drip_interval_s = 1.0  # between two tokens of `drip-<n>`

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    # --- handlers --------------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(RecordedRequest(request.method, request.path, headers, body, raw))
        return body

    def _auth_error(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {self.api_key}":
            return None
        if not header:
            msg = "You didn't provide an API key. You need to provide your API key in an Authorization header."
            return web.json_response(error_body(msg, "invalid_request_error"), status=401)
        given = header.removeprefix("Bearer ")
        masked = given[:3] + "*" * 4 + given[-4:] if len(given) > 8 else "***"
        msg = f"Incorrect API key provided: {masked}."
        return web.json_response(error_body(msg, "invalid_request_error", "invalid_api_key"), status=401)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if (denied := self._auth_error(request)) is not None:
            return denied
        examples = (*FIXED_SCENARIOS, "slow-1000", "stall-after-2", "cut-after-2", "long-100")
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in examples]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if (denied := self._auth_error(request)) is not None:
            return denied
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            msg = "We could not parse the JSON body of your request."
            return web.json_response(error_body(msg, "invalid_request_error"), status=400)
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            msg = "Invalid 'messages': expected a non-empty array."
            return web.json_response(error_body(msg, "invalid_request_error", None, "messages"), status=400)
        model = body["model"]
        if model in _ERRORS:
            status, message, type_, code = _ERRORS[model]
            headers = {"Retry-After": "1"} if status == 429 else None
            return web.json_response(error_body(message, type_, code), status=status, headers=headers)
        match = _PARAMETRIC.fullmatch(model)
        if model not in FIXED_SCENARIOS and match is None:
            msg = f"The model `{model}` does not exist or you do not have access to it."
            return web.json_response(error_body(msg, "invalid_request_error", "model_not_found"), status=404)
        kind, n = (match.group(1), int(match.group(2))) if match else (model, 0)
        if kind == "slow":
            await asyncio.sleep(n / 1000)
        ex = _Exchange(body)
        if kind == "garbage":
            return await self._garbage(request, bool(body.get("stream")))
        text = self._reply_text(ex, kind, n)
        if body.get("stream"):
            try:
                return await self._stream(request, ex, text, kind, n)
            except asyncio.CancelledError:  # the client (the gateway) dropped the connection
                self.disconnects.append(time.monotonic())
                raise
        return await self._complete(request, ex, text, kind)

    @staticmethod
    def _reply_text(ex: _Exchange, kind: str, n: int) -> str:
        if kind == "empty":
            return ""
        if kind in ("long", "drip"):
            return " ".join(f"w{i}" for i in range(n))
        if kind in ("stall-after", "cut-after"):
            return " ".join(f"w{i}" for i in range(n + 3))  # more than will ever be sent
        users = [m for m in ex.body["messages"] if m.get("role") == "user"]
        last = _text_of(users[-1].get("content")) if users else ""
        return f"Echo: {last}"

    async def _complete(self, request: web.Request, ex: _Exchange, text: str, kind: str) -> web.StreamResponse:
        call = ex.tool_call() if kind == "tool-model" else None
        if call is not None:
            tokens = max(1, _words(call["function"]["arguments"]))
            payload = ex.completion({"tool_calls": [call]}, "tool_calls", tokens)
        else:
            pieces, finish = ex.reply_pieces(text)
            payload = ex.completion({"content": "".join(pieces)}, finish, len(pieces))
        data = json.dumps(payload).encode()
        if kind not in ("stall-after", "cut-after"):
            return web.Response(body=data, content_type="application/json", headers={"x-request-id": ex.id})
        # Broken body: send half of it, then go silent or drop the connection.
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(data))})
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        return await self._break(request, resp, kind)

    async def _stream(self, request: web.Request, ex: _Exchange, text: str, kind: str, n: int) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        async def send(chunk: dict[str, Any]) -> None:
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        call = ex.tool_call() if kind == "tool-model" else None
        if call is not None:
            args = call["function"]["arguments"]
            head = {**call, "index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
            await send(ex.chunk({"role": "assistant", "content": None, "tool_calls": [head], "refusal": None}))
            for i in range(0, len(args), 8):  # arguments arrive in fragments, like OpenAI's
                await send(ex.chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 8]}}]}))
            tokens, finish = max(1, _words(args)), "tool_calls"
        else:
            pieces, finish = ex.reply_pieces(text)
            await send(ex.chunk({"role": "assistant", "content": "", "refusal": None}))
            if kind == "preamble-then-500":
                await asyncio.sleep(0.2)
                await send(
                    {"error": {"code": 500, "message": "The server had an error while processing your request."}}
                )
                return await self._break(request, resp, "cut-after")
            for i, piece in enumerate(pieces):
                if kind == "drip" and i:
                    await asyncio.sleep(self.drip_interval_s)
                if kind in ("stall-after", "cut-after") and i == n:
                    # Real cuts come after tokens flowed for a while; a cut in the same TCP burst as
                    # the tokens would make the client's reader discard them unread.
                    await asyncio.sleep(0.2)
                    return await self._break(request, resp, kind)
                await send(ex.chunk({"content": piece}))
            tokens = len(pieces)
        await send(ex.chunk({}, finish))
        if (ex.body.get("stream_options") or {}).get("include_usage"):
            await send(ex.chunk(None, usage=ex.usage(tokens)))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _break(self, request: web.Request, resp: web.StreamResponse, kind: str) -> web.StreamResponse:
        if kind == "stall-after":
            await asyncio.sleep(self.stall_s)  # cancelled as soon as the client disconnects
        elif request.transport is not None:
            # Close mid-body: what was written is flushed first (abort() could drop it), but there is
            # no terminating chunk and no [DONE], so the client sees a broken body.
            request.transport.close()
        return resp

    async def _garbage(self, request: web.Request, stream: bool) -> web.StreamResponse:
        if not stream:
            return web.Response(body=b"<html>502 Bad Gateway {oops", content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: {not json at all\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp
