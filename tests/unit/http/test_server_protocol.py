"""HeadHoldingTransport: a response head and the write after it leave as one write, nothing is held long."""

from __future__ import annotations

import asyncio

from polyroute.http.server_protocol import HeadHoldingTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return f"info:{name}" if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return 3


def _holding() -> tuple[HeadHoldingTransport, _Transport]:
    real = _Transport()
    return HeadHoldingTransport(real, asyncio.get_running_loop()), real  # type: ignore[arg-type]


async def test_head_and_body_leave_in_one_write() -> None:
    holding, real = _holding()
    holding.write(HEAD)
    assert real.writes == []
    holding.write(b"{}")
    assert real.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)
    assert real.writes == [HEAD + b"{}"]  # the cancelled flush sends nothing more


async def test_a_head_nothing_follows_goes_out_after_one_loop_pass() -> None:
    holding, real = _holding()
    holding.write(HEAD)
    await asyncio.sleep(0)
    assert real.writes == [HEAD]
    holding.write(b"data: 1\n\n")
    assert real.writes == [HEAD, b"data: 1\n\n"]  # later writes are never held


async def test_close_sends_a_held_head_first_and_other_calls_reach_the_transport() -> None:
    holding, real = _holding()
    holding.write(HEAD)
    holding.close()
    assert real.writes == [HEAD] and real.closed
    assert holding.get_extra_info("peername") == "info:peername"
    assert holding.get_extra_info("socket", "none") == "none"


async def test_the_whole_transport_interface_is_spelled_out() -> None:
    # No __getattr__ fallback (it slows every attribute read): every public method of
    # asyncio.Transport must be defined on the class itself.
    assert not hasattr(HeadHoldingTransport, "__getattr__")
    public = {name for name in dir(asyncio.Transport) if not name.startswith("_")}
    assert public <= set(vars(HeadHoldingTransport)), public - set(vars(HeadHoldingTransport))


async def test_a_held_head_counts_in_the_write_buffer_size() -> None:
    holding, _real = _holding()
    assert holding.get_write_buffer_size() == 3
    holding.write(HEAD)
    assert holding.get_write_buffer_size() == 3 + len(HEAD)


async def test_body_writes_are_not_held() -> None:
    holding, real = _holding()
    holding.write(b"0\r\n\r\n")
    holding.write(b"HTTP/1.1 is not a head without its blank line")
    assert real.writes == [b"0\r\n\r\n", b"HTTP/1.1 is not a head without its blank line"]
