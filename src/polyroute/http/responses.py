"""JSON responses encoded with msgspec, and the error envelope for every failure path."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from polyroute.domain.errors import GatewayError, InternalError, MethodNotAllowed, NotFound

log = logging.getLogger(__name__)
_encode = msgspec.json.encode


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(body), status_code=status, headers=headers, media_type="application/json")


def encode_headers(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """Header names and values as ASGI wants them (lower-case latin-1 bytes)."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]


class EncodedJSONResponse:
    """A JSON body already encoded, as one start and one body message: the chat hot path's response,
    without Starlette's Response header handling (issue #9). Same headers as `json_response`."""

    __slots__ = ("_body", "_headers", "_status")

    def __init__(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        raw = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
        self._body, self._status, self._headers = body, status, raw + encode_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self._status, "headers": self._headers})
        await send({"type": "http.response.body", "body": self._body})


def error_response(
    error: GatewayError, headers: dict[str, str] | None = None, request: Request | None = None
) -> Response:
    body = error.envelope()
    request_id = request.scope.get("state", {}).get("request_id") if request is not None else None
    if request_id:  # set by observability.middleware; OpenRouter's error metadata is an open object
        body["error"]["metadata"]["request_id"] = request_id
    return json_response(body, error.status, {**error.headers, **(headers or {})})


async def handle_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc, request=request)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound(f"Not found: {request.method} {request.url.path}"), request=request)
    if exc.status_code == 405:
        return error_response(MethodNotAllowed(f"Method {request.method} is not allowed here"), request=request)
    error = GatewayError(str(exc.detail))
    error.status = exc.status_code
    return error_response(error, request=request)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    # The client gets a generic envelope; the traceback stays in our log (no request body in it).
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    # Sent by Starlette's outermost middleware, past ours: set the request id header here too.
    request_id = request.scope.get("state", {}).get("request_id")
    return error_response(
        InternalError("Internal Server Error"), {"X-Request-Id": request_id} if request_id else None, request
    )
