"""Reading `application/x-www-form-urlencoded` bodies without an extra dependency, size-bounded."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_FORM_BYTES = 64 * 1024


class FormTooLarge(ValueError):
    pass


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (the first value of each name); an over-long body raises FormTooLarge."""
    body = b""
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge("form body too large")
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields
