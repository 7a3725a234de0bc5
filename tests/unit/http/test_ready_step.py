"""http.ready_step.step: results that are ready come back at once; the rest behaves like a plain await."""

from __future__ import annotations

import asyncio

import pytest

from polyroute.http.ready_step import Pending, step


async def _ready() -> int:
    return 1


async def _waits(event: asyncio.Event) -> int:
    await event.wait()
    return 2


async def _fails() -> int:
    raise ValueError("now")


async def test_ready_result_without_the_loop() -> None:
    assert step(_ready()) == 1
    with pytest.raises(ValueError, match="now"):
        step(_fails())


async def test_the_rest_is_awaited_like_the_original() -> None:
    event = asyncio.Event()
    got = step(_waits(event))
    assert isinstance(got, Pending)
    asyncio.get_running_loop().call_soon(event.set)
    assert await got == 2


async def test_cancelling_the_rest_runs_its_cleanup() -> None:
    cleaned: list[str] = []

    async def job() -> int:
        try:
            await asyncio.sleep(30)
            return 3
        finally:
            await asyncio.sleep(0)
            cleaned.append("done")

    got = step(job())
    assert isinstance(got, Pending)
    await asyncio.wait_for(got.cancel(), 5)
    assert cleaned == ["done"]


async def test_the_task_cancelled_while_waiting_on_the_rest_sees_cancellation() -> None:
    async def runner() -> int:
        got = step(asyncio.sleep(30, result=4))
        assert isinstance(got, Pending)
        return await got

    task = asyncio.create_task(runner())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
