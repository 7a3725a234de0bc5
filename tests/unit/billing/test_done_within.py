"""`_done_within`: wait for a future for at most a while, never cancelling it."""

from __future__ import annotations

import asyncio

import pytest

from polyroute.billing.ledger import _done_within


async def test_a_done_future_answers_at_once() -> None:
    future = asyncio.get_running_loop().create_future()
    future.set_result(1)
    assert await _done_within(future, 0.0)


async def test_a_future_done_in_time_wakes_the_waiter() -> None:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_later(0.01, future.set_exception, OSError("boom"))
    started = loop.time()
    assert await _done_within(future, 5.0)
    assert loop.time() - started < 1.0
    assert isinstance(future.exception(), OSError)  # not raised by the wait


async def test_a_slow_future_times_out_and_keeps_running() -> None:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    assert not await _done_within(future, 0.02)
    assert not future.cancelled()
    future.set_result("late")
    assert await _done_within(future, 0.0) and future.result() == "late"


async def test_a_caller_that_leaves_does_not_cancel_the_future() -> None:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    waiter = asyncio.ensure_future(_done_within(future, 5.0))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not future.done()
    future.set_result(None)  # no leftover callback fires into the cancelled wait
    await asyncio.sleep(0)
