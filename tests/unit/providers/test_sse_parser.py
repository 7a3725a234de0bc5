"""The upstream SSE parser gives the same events however the bytes are split across reads."""

from __future__ import annotations

import random

import pytest

from polyroute.providers.errors import UpstreamError
from polyroute.providers.sse import MAX_LINE_BYTES, SSEDataParser

BODY = (
    b": keep-alive comment\n\n"
    b'data: {"a":1}\n\n'
    b"event: message\r\nid: 7\r\n"
    b'data: {"b":2}\r\n\r\n'
    b"data: line one\ndata:line two\n\n"
    b"retry: 10\n\n"
    b"data: [DONE]\n\n"
)
EVENTS = [b'{"a":1}', b'{"b":2}', b"line one\nline two", b"[DONE]"]


def _parse(pieces: list[bytes]) -> list[bytes]:
    parser = SSEDataParser()
    events: list[bytes] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events + parser.close()


def test_one_read_gives_every_event() -> None:
    assert _parse([BODY]) == EVENTS


@pytest.mark.parametrize("seed", range(30))
def test_any_split_gives_the_same_events(seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(BODY)), rng.randint(1, 25)))
    pieces = [BODY[a:b] for a, b in zip([0, *cuts], [*cuts, len(BODY)], strict=True)]
    assert _parse(pieces) == EVENTS


def test_byte_by_byte() -> None:
    assert _parse([BODY[i : i + 1] for i in range(len(BODY))]) == EVENTS


def test_eof_ends_an_event_without_its_blank_line_or_newline() -> None:
    assert _parse([b'data: {"a":1}\n\ndata: {"last":true}']) == [b'{"a":1}', b'{"last":true}']
    assert _parse([b"data: x\n"]) == [b"x"]


def test_an_endless_line_is_a_protocol_failure() -> None:
    parser = SSEDataParser()
    piece = b"x" * (1024 * 1024)
    with pytest.raises(UpstreamError):
        for _ in range(MAX_LINE_BYTES // len(piece) + 2):
            parser.feed(piece)
