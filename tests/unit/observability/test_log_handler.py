"""The coalescing stderr handler: one write per loop pass, nothing reordered, errors and other threads at once."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from polyroute.observability.log_handler import CoalescingStreamHandler


class CountingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


Logged = tuple[logging.Logger, CoalescingStreamHandler, "CountingStream"]


@pytest.fixture
def logged() -> Logged:
    stream = CountingStream()
    handler = CoalescingStreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test.coalescing.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers[:] = [handler]
    return logger, handler, stream


async def test_lines_of_one_pass_share_one_write_on_the_next_pass(logged: Logged) -> None:
    logger, handler, stream = logged
    handler.attach(asyncio.get_running_loop())
    for i in range(5):
        logger.info("line %d", i)
    assert stream.writes == []  # held until the pass ends
    await asyncio.sleep(0)
    assert stream.writes == ["".join(f"INFO line {i}\n" for i in range(5))]
    logger.info("alone")
    await asyncio.sleep(0)
    assert stream.writes[-1] == "INFO alone\n"
    handler.detach()


async def test_a_warning_goes_out_at_once_after_what_is_pending(logged: Logged) -> None:
    logger, handler, stream = logged
    handler.attach(asyncio.get_running_loop())
    logger.info("first")
    logger.warning("trouble")
    assert "".join(stream.writes) == "INFO first\nWARNING trouble\n"
    await asyncio.sleep(0)
    assert "".join(stream.writes) == "INFO first\nWARNING trouble\n"  # nothing written twice
    handler.detach()


async def test_other_threads_write_at_once_and_detach_flushes(logged: Logged) -> None:
    logger, handler, stream = logged
    handler.attach(asyncio.get_running_loop())
    logger.info("loop line")
    thread = threading.Thread(target=logger.info, args=("thread line",))
    thread.start()
    thread.join()
    assert "".join(stream.writes) == "INFO loop line\nINFO thread line\n"  # in order
    logger.info("last")
    handler.detach()  # as at shutdown: pending lines are written, later ones go straight out
    assert "".join(stream.writes).endswith("INFO last\n")
    logger.info("after")
    assert stream.writes[-1] == "INFO after\n"


def test_a_closed_loop_never_strands_a_line(logged: Logged) -> None:
    logger, handler, stream = logged
    loop = asyncio.new_event_loop()
    handler.attach(loop)
    loop.close()
    logger.info("still written")
    assert "".join(stream.writes) == "INFO still written\n"


def test_unattached_it_is_a_plain_stream_handler(logged: Logged) -> None:
    logger, _, stream = logged
    logger.info("one")
    logger.info("two")
    assert stream.writes == ["INFO one\n", "INFO two\n"]
