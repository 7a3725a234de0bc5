"""What every dialect's fake upstream shares: an aiohttp server on 127.0.0.1 in its own thread, request
recording, and the fault scenarios of a streamed answer (stall, cut, malformed event, error event).

Subclasses add their routes in `add_routes` and describe a stream as frames, each marked as content
or not, so `send_frames` can strike a `<fault>-after-<n>` scenario after exactly n content frames.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

from tests.support import leak_scan

Frame = tuple[bytes, bool]  # (bytes on the wire, carries content)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or None when the body was empty or not JSON
    raw: bytes

    def __post_init__(self) -> None:
        leak_scan.register_request(self.body, self.headers, self.path)  # its key and prompts: none may be logged


class LoopbackUpstream:
    thread_name = "fake-upstream"

    def __init__(self, stall_s: float = 600.0) -> None:
        self.requests: list[RecordedRequest] = []
        self.delay_s = 0.0  # added before every response's first byte
        self.stall_s = stall_s  # how long `stall-after-<n>` stays silent
        self.disconnects: list[float] = []  # time.monotonic() when a client dropped a stalled response
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def clear(self) -> None:
        self.requests.clear()

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.requests)

    # --- lifecycle -------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sock, started), name=self.thread_name, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"{self.thread_name} did not start")
        return self

    def _run(self, sock: socket.socket, started: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.add_routes(app)
        # Cancel a handler when its client goes away, so stalled streams do not linger.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- helpers for handlers ----------------------------------------------------------------------
    async def record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(RecordedRequest(request.method, request.path_qs, headers, body, raw))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return body

    async def send_frames(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        frames: list[Frame],
        fault: tuple[str, int] | None = None,
        fault_frame: bytes = b"",
    ) -> web.StreamResponse:
        """Write the frames; with `fault = (kind, n)` strike after n content frames.

        `malformed-after` and `overloaded-after` write `fault_frame` and end the body; `stall-after`
        goes silent until the client leaves; `cut-after` closes the connection mid-body.
        """
        sent = 0
        try:
            for frame, is_content in frames:
                if fault is not None and is_content and sent == fault[1]:
                    # A cut in the same TCP burst as the tokens would make the reader drop them unread.
                    await asyncio.sleep(0.2)
                    return await self.strike(request, resp, fault[0], fault_frame)
                await resp.write(frame)
                sent += is_content
            await resp.write_eof()
        except asyncio.CancelledError:  # the client (the gateway) dropped the connection
            self.disconnects.append(time.monotonic())
            raise
        return resp

    async def strike(
        self, request: web.Request, resp: web.StreamResponse, kind: str, fault_frame: bytes = b""
    ) -> web.StreamResponse:
        if kind in ("malformed-after", "overloaded-after"):
            await resp.write(fault_frame)
            await resp.write_eof()
        elif kind == "stall-after":
            await asyncio.sleep(self.stall_s)  # cancelled as soon as the client disconnects
        elif request.transport is not None:
            # Close mid-body: what was written is flushed first, but the body never ends properly.
            request.transport.close()
        return resp

    async def half_body(self, request: web.Request, data: bytes, kind: str, content_type: str) -> web.StreamResponse:
        """A non-streamed body that breaks half way (stall or cut)."""
        resp = web.StreamResponse(headers={"Content-Type": content_type, "Content-Length": str(len(data))})
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        try:
            return await self.strike(request, resp, "stall-after" if kind == "stall-after" else "cut-after")
        except asyncio.CancelledError:
            self.disconnects.append(time.monotonic())
            raise
