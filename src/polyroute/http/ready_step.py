"""Take what an awaitable has ready without going through the event loop (no I/O of its own).

`step(awaitable)` runs it up to its first real wait. When it finishes without waiting (say, the
next event of a stream whose bytes are already buffered), its result comes back at once: no task,
no loop iteration. Otherwise a `Pending` comes back, to await (or to wrap in a task) for the rest;
the event loop then sees exactly what it would have seen had the awaitable been awaited from the
start: the same future to wait on, then its result or exception, cancellation included, sent back.
Used on the streaming path (issue #9), where most events are ready when asked for. It lives in
`http/` (not `domain/`, which holds plain value types) because only the SSE writer uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Pending(Generic[T]):
    """The rest of an awaitable that had to wait; await it once (or `wait()` in a task)."""

    __slots__ = ("_steps", "_waits_on")

    def __init__(self, steps: Any, waits_on: Any) -> None:
        self._steps = steps
        self._waits_on = waits_on

    def __await__(self) -> Generator[Any, Any, T]:
        steps, waits_on = self._steps, self._waits_on
        while True:
            try:
                sent = yield waits_on
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:
                try:
                    waits_on = steps.throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                continue
            try:
                waits_on = steps.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def wait(self) -> T:
        return await self

    async def cancel(self) -> None:
        """Cancel the rest and wait for its cleanup (its `finally` blocks may await); its outcome is dropped."""
        try:
            waits_on = self._steps.throw(asyncio.CancelledError())
        except BaseException:
            return  # finished (cancelled, failed or, ignoring the cancellation, done) without waiting
        with contextlib.suppress(BaseException):
            await Pending(self._steps, waits_on)


def step(awaitable: Awaitable[T]) -> T | Pending[T]:
    """The result if `awaitable` finishes without waiting, else a `Pending`; its exceptions propagate."""
    steps = awaitable.__await__()
    try:
        waits_on = steps.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    return Pending(steps, waits_on)
