"""SSEResponse: pieces ready together go out in one write, nothing ready is held back, and a
client that leaves closes the source at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from polyroute.http.sse import FLUSH, MAX_PENDING_BYTES, SSEResponse


class _Client:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.ended = False
        self.gone = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            assert not self.ended
            self.bodies.append(message["body"])
            self.ended = not message["more_body"]

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def _run(source: AsyncGenerator[bytes, None], client: _Client | None = None) -> _Client:
    client = client or _Client()
    await SSEResponse(source)({"type": "http"}, client.receive, client.send)
    return client


async def test_ready_pieces_are_one_write_and_waiting_flushes_first() -> None:
    gate = asyncio.Event()
    seen_before_wait: list[list[bytes]] = []
    client = _Client()

    async def source() -> AsyncGenerator[bytes, None]:
        yield b"a"
        yield b"b"
        asyncio.get_running_loop().call_soon(gate.set)
        await gate.wait()  # the source waits: a and b must already be out
        seen_before_wait.append(list(client.bodies))
        yield b"c"
        yield b"d"

    await _run(source(), client)
    assert seen_before_wait == [[b"ab"]]
    assert client.bodies == [b"ab", b"cd"] and client.ended


async def test_flush_sends_at_once() -> None:
    client = await _run(_pieces(b"first", FLUSH, b"x", b"y"))
    assert client.bodies == [b"first", b"xy"]


async def test_pending_is_capped() -> None:
    big = b"z" * (MAX_PENDING_BYTES // 2)
    client = await _run(_pieces(big, big, b"tail"))
    assert client.bodies == [big + big, b"tail"]


async def test_source_errors_after_waiting_propagate() -> None:
    async def source() -> AsyncGenerator[bytes, None]:
        yield b"a"
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await _run(source())


async def test_client_leaving_while_source_waits_closes_it() -> None:
    closed = asyncio.Event()
    client = _Client()

    async def source() -> AsyncGenerator[bytes, None]:
        try:
            yield b"a"
            asyncio.get_running_loop().call_soon(client.gone.set)
            await asyncio.sleep(30)
            yield b"never"
        finally:
            closed.set()

    await asyncio.wait_for(_run(source(), client), 5)
    assert closed.is_set()
    assert client.bodies == [b"a"] and not client.ended


async def test_cancellation_from_outside_propagates() -> None:
    started = asyncio.Event()

    async def source() -> AsyncGenerator[bytes, None]:
        started.set()
        await asyncio.sleep(30)
        yield b"never"

    task = asyncio.create_task(_run(source()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _pieces(*pieces: bytes) -> AsyncGenerator[bytes, None]:
    for piece in pieces:
        yield piece


async def test_client_leaving_during_a_flush_while_the_source_waits_closes_the_source_cleanly() -> None:
    cleaned = asyncio.Event()
    blocked = asyncio.Event()

    class _SlowClient(_Client):
        async def send(self, message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                blocked.set()
                await asyncio.sleep(30)  # a client that stopped reading: the write waits
            await super().send(message)

    client = _SlowClient()

    async def source() -> AsyncGenerator[bytes, None]:
        try:
            yield b"a"
            await asyncio.sleep(30)  # waits: "a" is flushed, and the flush blocks
            yield b"never"
        finally:
            await asyncio.sleep(0)  # cleanup that awaits
            cleaned.set()

    async def leave() -> None:
        await blocked.wait()
        client.gone.set()

    leaving = asyncio.create_task(leave())
    await asyncio.wait_for(_run(source(), client), 5)
    await leaving
    assert cleaned.is_set()
