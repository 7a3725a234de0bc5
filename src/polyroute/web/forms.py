"""Reading `application/x-www-form-urlencoded` bodies without an extra dependency, size-bounded."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_FORM_BYTES = 64 * 1024


class FormTooLarge(ValueError):
    pass


class Form(dict[str, str]):
    """The first value of each field, plus `getlist` for fields sent several times (checkbox groups)."""

    def __init__(self, pairs: list[tuple[str, str]] | None = None) -> None:
        super().__init__()
        self._all: dict[str, list[str]] = {}
        for name, value in pairs or []:
            self.setdefault(name, value)
            self._all.setdefault(name, []).append(value)

    def getlist(self, name: str) -> list[str]:
        return list(self._all.get(name, []))


async def read_form(request: Request) -> Form:
    """The form's fields; an over-long body raises FormTooLarge."""
    body = b""
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge("form body too large")
    return Form(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
