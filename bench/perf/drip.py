"""A slow OpenAI-compatible upstream: SSE chunks dripped until released (for the 1,000-stream RSS test).

usage: drip.py PORT [INTERVAL_S] [MAX_S]

`POST /v1/chat/completions` answers `text/event-stream` (close-delimited): a role chunk and a first
content chunk at once, then one content chunk every INTERVAL_S, until `POST /release` (or MAX_S),
then a finish chunk, a usage chunk and `data: [DONE]`. Holding every stream open until the harness
releases them makes "N streams in flight at once" exact, however long the client takes to open them.
nginx cannot drip, so this one measurement uses a tiny asyncio server (pinned to the load core).
Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
_USAGE = {"prompt_tokens": 38, "completion_tokens": 20, "total_tokens": 58}


def _event(delta: dict[str, str] | None, *, finish: str | None = None, usage: bool = False) -> bytes:
    chunk: dict[str, object] = {
        "id": "chatcmpl-drip",
        "object": "chat.completion.chunk",
        "created": 1763776800,
        "model": "slow",
        "choices": [] if usage else [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = _USAGE
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


class Drip:
    def __init__(self, interval_s: float, max_s: float) -> None:
        self.interval_s = interval_s
        self.max_s = max_s
        self.release = asyncio.Event()  # set (and replaced) by POST /release: ends the streams open now

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path = await _read_request(reader)
            if path == "/release":
                self.release.set()
                self.release = asyncio.Event()
                writer.write(_OK)
            elif path.endswith("/chat/completions"):
                await self._drip(writer, self.release)
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _drip(self, writer: asyncio.StreamWriter, release: asyncio.Event) -> None:
        writer.write(_HEAD + _event({"role": "assistant", "content": ""}) + _event({"content": "Drip"}))
        await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_s
        while not release.is_set() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), self.interval_s)
            writer.write(_event({"content": " drip"}))
            await writer.drain()
        writer.write(_event({}, finish="stop") + _event(None, usage=True) + b"data: [DONE]\n\n")


async def _read_request(reader: asyncio.StreamReader) -> str:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return path


async def main(port: int, interval_s: float, max_s: float) -> None:
    drip = Drip(interval_s, max_s)
    server = await asyncio.start_server(drip.handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port = int(sys.argv[1])
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(port, interval, limit))
