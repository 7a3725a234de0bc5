"""Reading AWS event-stream frames (`application/vnd.amazon.eventstream`) from an upstream response.

Framing and CRC checks are botocore's (`EventStreamBuffer`); this module adds our timeouts (first
frame within `first_byte_s`, then at most `idle_s` of silence) and turns each frame into
`(message type, event or exception type, payload)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import msgspec
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError  # type: ignore[import-untyped]

from polyroute.providers.errors import FailureKind, UpstreamError

_READ_BYTES = 64 * 1024


def frame_event(message: EventStreamMessage) -> tuple[str, str, Any]:
    headers = message.headers
    message_type = str(headers.get(":message-type") or "event")
    if message_type == "error":  # a service-level error frame: code and text live in the headers
        code = str(headers.get(":error-code") or "error")
        return message_type, code, {"message": headers.get(":error-message")}
    kind = str(headers.get(":exception-type") or headers.get(":event-type") or "")
    payload: Any = {}
    if message.payload:
        try:
            payload = msgspec.json.decode(message.payload)
        except msgspec.DecodeError:
            if message_type == "exception":
                return message_type, kind, message.payload
            raise UpstreamError(FailureKind.PROTOCOL, f"upstream sent an invalid {kind or 'event'} payload") from None
    return message_type, kind, payload


async def iter_frames(
    response: aiohttp.ClientResponse, *, first_byte_s: float, idle_s: float
) -> AsyncGenerator[tuple[str, str, Any], None]:
    """Yield each frame; ends at EOF (the caller decides whether the stream was complete)."""
    buffer = EventStreamBuffer()
    timeout_s = first_byte_s
    while True:
        try:
            async with asyncio.timeout(timeout_s):
                data = await response.content.read(_READ_BYTES)
        except TimeoutError:
            raise UpstreamError(FailureKind.TIMEOUT, f"upstream sent nothing for {timeout_s:g} s") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamError(FailureKind.PROTOCOL, f"upstream stream broke: {type(exc).__name__}") from None
        if not data:
            return
        buffer.add_data(data)
        try:
            messages = list(buffer)
        except ParserError as exc:
            raise UpstreamError(FailureKind.PROTOCOL, f"upstream sent a bad event-stream frame: {exc}") from None
        for message in messages:
            timeout_s = idle_s
            yield frame_event(message)
