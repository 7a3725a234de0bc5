"""Minimal polyroute hot path, in several stacks, for bench/stack.

One module, configured by environment variables so every server runs the exact
same relay code:

  RELAY_FRAMEWORK  starlette | starlette-lean | raw
                   (starlette-lean = Starlette routing, but the SSE answer is a tiny ASGI
                    callable instead of StreamingResponse; raw = bare ASGI, no framework)
  RELAY_CLIENT     aiohttp | httpx | httpx2
  RELAY_JSON       msgspec | orjson | json (default msgspec)
  UPSTREAM         http://127.0.0.1:PORT   (the nginx mock)

Served as `relay:app` by uvicorn or granian. The relay:
  POST /api/v1/chat/completions -> parse body, rewrite "model", POST upstream
  (pooled keep-alive client), parse upstream JSON, set id/model/provider,
  encode, respond. With "stream": true it relays SSE: parse each `data:` JSON,
  rewrite, re-encode, write one chunk per event, pass `[DONE]` through.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

FRAMEWORK = os.environ.get("RELAY_FRAMEWORK", "starlette")
CLIENT = os.environ.get("RELAY_CLIENT", "aiohttp")
JSON = os.environ.get("RELAY_JSON", "msgspec")
UPSTREAM = os.environ.get("UPSTREAM", "http://127.0.0.1:18080")

CHAT_PATH = "/v1/chat/completions"
SSE_PATH = "/v1/sse/chat/completions"  # nginx cannot branch on the body, so streaming uses its own path
UP_MODEL = "gpt-4o-mini"
PROVIDER = "OpenAI"
UP_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

# ---------------------------------------------------------------- JSON
decode: Callable[[bytes | str], Any]
encode: Callable[[Any], bytes]
if JSON == "msgspec":
    import msgspec

    decode = msgspec.json.Decoder().decode
    encode = msgspec.json.Encoder().encode
elif JSON == "orjson":
    import orjson

    decode = orjson.loads
    encode = orjson.dumps
elif JSON == "json":
    import json

    _dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    decode = json.loads

    def encode(o: Any) -> bytes:
        return _dumps(o).encode()
else:
    raise SystemExit(f"unknown RELAY_JSON={JSON}")

_ids = itertools.count(1)
_prefix = f"gen-{os.getpid()}-"


def new_id() -> str:
    return _prefix + str(next(_ids))


# ---------------------------------------------------------------- upstream clients
class Upstream:
    async def post(self, path: str, body: bytes) -> bytes:
        raise NotImplementedError

    def stream(self, path: str, body: bytes) -> AsyncIterator[bytes | str]:
        """Yield the payload of each `data:` line (without the prefix)."""
        raise NotImplementedError


class AiohttpUpstream(Upstream):
    def __init__(self) -> None:
        import aiohttp

        self.s = aiohttp.ClientSession(
            base_url=UPSTREAM,
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60),
            headers=UP_HEADERS,
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def post(self, path: str, body: bytes) -> bytes:
        async with self.s.post(path, data=body) as r:
            return await r.read()

    async def stream(self, path: str, body: bytes) -> AsyncIterator[bytes | str]:
        async with self.s.post(path, data=body) as r:
            async for line in r.content:  # StreamReader iterates lines
                if line.startswith(b"data: "):
                    yield line[6:].rstrip(b"\r\n")


class HttpxUpstream(Upstream):
    def __init__(self, mod: str) -> None:
        httpx = __import__(mod)
        # default max_keepalive_connections=20 would churn connections at 32 concurrency
        self.c = httpx.AsyncClient(
            base_url=UPSTREAM,
            headers=UP_HEADERS,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
            timeout=30,
        )

    async def post(self, path: str, body: bytes) -> bytes:
        r = await self.c.post(path, content=body)
        return r.content

    async def stream(self, path: str, body: bytes) -> AsyncIterator[bytes | str]:
        async with self.c.stream("POST", path, content=body) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    yield line[6:]


_up: Upstream | None = None


def upstream() -> Upstream:
    # Created lazily inside the running loop (works under any ASGI server, no lifespan needed).
    global _up
    if _up is None:
        _up = AiohttpUpstream() if CLIENT == "aiohttp" else HttpxUpstream(CLIENT)
    return _up


# ---------------------------------------------------------------- relay core (framework-free)
def prepare(body: bytes) -> tuple[bytes, str, bool]:
    req = decode(body)
    model = req.get("model")
    stream = bool(req.get("stream"))
    req["model"] = UP_MODEL
    return encode(req), model, stream


async def complete(up_body: bytes, model: str) -> bytes:
    obj = decode(await upstream().post(CHAT_PATH, up_body))
    obj["id"] = new_id()
    obj["model"] = model
    obj["provider"] = PROVIDER
    return encode(obj)


async def sse(up_body: bytes, model: str) -> AsyncIterator[bytes]:
    gid = new_id()
    async for payload in upstream().stream(SSE_PATH, up_body):
        if payload == b"[DONE]" or payload == "[DONE]":
            yield b"data: [DONE]\n\n"
            continue
        obj = decode(payload)
        obj["id"] = gid
        obj["model"] = model
        obj["provider"] = PROVIDER
        yield b"data: " + encode(obj) + b"\n\n"


SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_SSE_H = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class LeanSSE:
    """ASGI response that writes each chunk straight to `send`.

    Replaces Starlette's StreamingResponse, which (for servers announcing ASGI
    spec < 2.4, e.g. uvicorn 0.54) wraps every response in an anyio task group
    with a disconnect listener. Disconnects still matter for a gateway (stop
    paying for tokens nobody reads), and uvicorn's `send` silently drops writes
    after a disconnect, so this keeps one plain asyncio watcher task per stream
    that cancels the relay when the client goes away.
    """

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        relay = asyncio.current_task()
        done = False

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not done and relay is not None:
                relay.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_H})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            done = True
            await send({"type": "http.response.body", "body": b""})
        finally:
            done = True
            watcher.cancel()


# ---------------------------------------------------------------- (1) Starlette
if FRAMEWORK in ("starlette", "starlette-lean"):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def chat(request: Request) -> Response:
        up_body, model, stream = prepare(await request.body())
        if stream:
            if FRAMEWORK == "starlette-lean":
                return LeanSSE(sse(up_body, model))  # type: ignore[return-value]
            return StreamingResponse(sse(up_body, model), media_type="text/event-stream", headers=SSE_HEADERS)
        return Response(await complete(up_body, model), media_type="application/json")

    app: Any = Starlette(routes=[Route("/api/v1/chat/completions", chat, methods=["POST"])])

# ---------------------------------------------------------------- (2) raw ASGI
elif FRAMEWORK == "raw":
    _JSON_H = (b"content-type", b"application/json")

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        t = scope["type"]
        if t == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if t != "http":
            return
        if scope["path"] != "/api/v1/chat/completions" or scope["method"] != "POST":
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        msg = await receive()
        body = msg.get("body", b"")
        if msg.get("more_body"):
            parts = [body]
            while msg.get("more_body"):
                msg = await receive()
                parts.append(msg.get("body", b""))
            body = b"".join(parts)
        up_body, model, stream = prepare(body)
        if stream:
            await LeanSSE(sse(up_body, model))(scope, receive, send)
            return
        out = await complete(up_body, model)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON_H, (b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})

else:
    raise SystemExit(f"unknown RELAY_FRAMEWORK={FRAMEWORK}")
