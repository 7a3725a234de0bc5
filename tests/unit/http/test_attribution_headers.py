"""App attribution from the raw request headers: the same answers as Starlette's `headers.get`."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from polyroute.http.routes_chat import attribution_of


def _request(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"authorization", b"Bearer x")],
        [(b"x-title", b"App"), (b"http-referer", b"https://app.example")],
        [(b"x-openrouter-title", b"Other"), (b"referer", b"https://r.example")],
        [(b"x-openrouter-title", b"Other"), (b"x-title", b"First"), (b"x-title", b"Second")],
        [(b"referer", b"https://r.example"), (b"http-referer", b"https://h.example")],
        [(b"x-title", b""), (b"x-openrouter-title", b"Fallback")],
        [(b"x-title", "Caf\u00e9".encode("latin-1"))],
    ],
)
def test_attribution_matches_starlette_header_lookup(headers: list[tuple[bytes, bytes]]) -> None:
    request = _request(headers)
    got = attribution_of(request)
    h = request.headers
    assert got.title == (h.get("x-title") or h.get("x-openrouter-title"))
    assert got.referer == (h.get("http-referer") or h.get("referer"))


def test_first_value_and_precedence() -> None:
    got = attribution_of(
        _request([(b"referer", b"r"), (b"x-title", b"one"), (b"x-title", b"two"), (b"http-referer", b"h")])
    )
    assert (got.title, got.referer) == ("one", "h")
