"""Log formatters: one JSON object per line (for collectors) or plain text (for a terminal).

Both add the current request id and scrub secrets from the finished line; neither ever sees a
request or response body (nothing in polyroute logs one).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec

from polyroute.observability.context import current_request
from polyroute.observability.scrub import Scrubber

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


_encode = msgspec.json.Encoder(enc_hook=str).encode
_last_second: tuple[int, str] = (-1, "")


def _utc_second(epoch_s: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` in UTC, formatted once per second."""
    global _last_second
    if _last_second[0] != epoch_s:
        _last_second = (epoch_s, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)))
    return _last_second[1]


class RequestIdFilter(logging.Filter):
    """Stamps `request_id` on records logged while a request is being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            context = current_request()
            record.request_id = context.request_id if context is not None else None
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self._scrub = scrubber

    def format(self, record: logging.LogRecord) -> str:
        http = getattr(record, "http", None)
        exc = self.formatException(record.exc_info) if record.exc_info else None
        return self._line(
            _utc_second(int(record.created)) + f".{int(record.msecs):03d}Z",
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "request_id", None),
            http if isinstance(http, dict) else None,
            exc,
        )

    def format_fields(
        self, created: float, level: str, name: str, message: str, request_id: str | None, http: dict[str, Any]
    ) -> str:
        """The line `format` makes of a record with these fields, made without one (access_line.py)."""
        msecs = int((created - int(created)) * 1000)  # as LogRecord works it out
        return self._line(_utc_second(int(created)) + f".{msecs:03d}Z", level, name, message, request_id, http, None)

    def _line(
        self,
        ts: str,
        level: str,
        name: str,
        message: str,
        request_id: str | None,
        http: dict[str, Any] | None,
        exc: str | None,
    ) -> str:
        entry: dict[str, Any] = {"ts": ts, "level": level, "logger": name, "msg": message}
        if request_id:
            entry["request_id"] = request_id
        if http is not None:
            entry.update(http)
        if exc:
            entry["exc"] = exc
        return self._scrub(_encode(entry).decode())


class TextFormatter(logging.Formatter):
    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__(TEXT_FORMAT)
        self._scrub = scrubber

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        http = getattr(record, "http", None)
        if isinstance(http, dict) and "model" in http:
            line += " " + " ".join(
                f"{k}={http[k]}"
                for k in (
                    "model",
                    "provider",
                    "outcome",
                    "prompt_tokens",
                    "completion_tokens",
                    "cost_pusd",
                    "key_hash_prefix",
                )
                if http.get(k) is not None
            )
        if request_id:
            line += f" [{request_id}]"
        return self._scrub(line)
