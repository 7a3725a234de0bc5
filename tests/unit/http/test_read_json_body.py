"""The JSON body read straight from ASGI `receive`: pieces joined, size limit, empty body, client gone."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from polyroute.domain.errors import BadRequest, PayloadTooLarge
from polyroute.http.routes_chat import read_json_body


def _request(messages: Iterable[dict[str, Any]], headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    queue = list(messages)
    received: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        message = queue.pop(0)
        received.append(message)
        return message

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers or []}
    return Request(scope, receive)


def _piece(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_in_several_messages_is_joined() -> None:
    request = _request([_piece(b'{"model": ', True), _piece(b"", True), _piece(b'"a", "n": [1, 2]}', False)])
    assert await read_json_body(request, 1000) == {"model": "a", "n": [1, 2]}


async def test_a_message_without_body_or_more_body_keys_ends_the_body() -> None:
    request = _request([_piece(b'{"a": ', True), {"type": "http.request", "body": b"1}"}])
    assert await read_json_body(request, 1000) == {"a": 1}


async def test_a_body_over_the_limit_is_413_without_a_content_length() -> None:
    request = _request([_piece(b"x" * 600, True), _piece(b"x" * 600, False)])
    with pytest.raises(PayloadTooLarge):
        await read_json_body(request, 1000)


async def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    request = _request([], headers=[(b"content-length", b"1001")])
    with pytest.raises(PayloadTooLarge):
        await read_json_body(request, 1000)


async def test_an_empty_body_is_400() -> None:
    with pytest.raises(BadRequest, match="empty"):
        await read_json_body(_request([_piece(b"", False)]), 1000)


async def test_invalid_json_is_400() -> None:
    with pytest.raises(BadRequest, match="Invalid JSON"):
        await read_json_body(_request([_piece(b"{nope", False)]), 1000)


async def test_a_client_that_leaves_mid_body_raises_client_disconnect() -> None:
    request = _request([_piece(b'{"a": ', True), {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnect):
        await read_json_body(request, 1000)
