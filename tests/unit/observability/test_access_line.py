"""The access line written straight to the serving loop's handler: the same text as through
`Logger.info`, scrubbed, and the ordinary path whenever logging is set up any other way."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from polyroute.observability.access_line import _direct_handler, access_log, log_access
from polyroute.observability.log_format import JsonFormatter, RequestIdFilter
from polyroute.observability.log_handler import CoalescingStreamHandler
from polyroute.observability.scrub import Scrubber

FIELDS = {
    "method": "POST",
    "route": "/api/v1/chat/completions",
    "status": 200,
    "duration_ms": 1.25,
    "key_hash_prefix": "0123456789ab",
    "generation_id": "gen-1700000000-0000abcdefghijklmnop",
    "model": "acme/model",
    "prompt_tokens": 7,
    "completion_tokens": 11,
    "cost_pusd": 12_345,
    "ttft_ms": None,
}


class Lines:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass

    def entries(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.text.splitlines()]


@contextmanager
def served() -> Iterator[tuple[CoalescingStreamHandler, Lines]]:
    """Logging as `polyroute serve` sets it up: one coalescing JSON handler on the root, nothing else
    (inside the test: pytest adds its own capture handlers to the root for the test's body)."""
    lines = Lines()
    handler = CoalescingStreamHandler(lines)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter(Scrubber(["provider-secret-value"])))
    handler.addFilter(RequestIdFilter())
    root, package = logging.getLogger(), logging.getLogger("polyroute")  # the leak scan's file handler
    saved = root.handlers[:], package.handlers[:], access_log.level
    root.handlers[:], package.handlers[:] = [handler], []
    access_log.setLevel(logging.INFO)
    try:
        yield handler, lines
    finally:
        root.handlers[:], package.handlers[:] = saved[0], saved[1]
        access_log.setLevel(saved[2])
        handler.detach()


def _write(request_id: str = "req-unit", **changes: object) -> None:
    log_access("POST", "/api/v1/chat/completions", 200, 1.25, request_id, FIELDS | changes)


async def test_the_direct_line_is_the_line_logging_makes() -> None:
    with served() as (handler, lines):
        handler.attach(asyncio.get_running_loop())
        assert _direct_handler() is handler
        _write()
        assert lines.text == ""  # queued for the end of the pass, like every other line
        await asyncio.sleep(0)
        access_log.addFilter(logging.Filter())  # a logger filter (this one passes all) sends it via Logger.info
        try:
            assert _direct_handler() is None
            _write()
        finally:
            access_log.filters.clear()
        await asyncio.sleep(0)
        direct, through_logging = lines.entries()
        assert direct.pop("ts") and through_logging.pop("ts")
        assert direct == through_logging
        assert direct["msg"] == "POST /api/v1/chat/completions 200 1.2ms" and direct["request_id"] == "req-unit"
        assert direct["logger"] == "polyroute.access" and direct["cost_pusd"] == 12_345


def test_format_fields_gives_format_s_text_for_the_same_instant() -> None:
    formatter = JsonFormatter(Scrubber())
    record = logging.LogRecord("polyroute.access", logging.INFO, "", 0, "POST / %d", (200,), None)
    record.created, record.msecs = 1_700_000_123.987654, 987.0
    record.request_id, record.http = "req-x", dict(FIELDS)
    assert formatter.format_fields(record.created, "INFO", record.name, "POST / 200", "req-x", dict(FIELDS)) == (
        formatter.format(record)
    )
    assert json.loads(formatter.format(record))["ts"] == "2023-11-14T22:15:23.987Z"


async def test_the_direct_line_is_scrubbed() -> None:
    with served() as (handler, lines):
        handler.attach(asyncio.get_running_loop())
        _write(model="sk-or-v1-0123456789abcdef0123456789abcdef", provider="provider-secret-value")
        await asyncio.sleep(0)
        assert "0123456789abcdef0123" not in lines.text and "provider-secret-value" not in lines.text
        assert lines.text.count("[REDACTED]") == 2


async def test_any_other_setup_takes_the_ordinary_path() -> None:
    with served() as (handler, lines):
        captured: list[logging.LogRecord] = []
        capture = logging.Handler()
        capture.emit = captured.append  # type: ignore[method-assign]
        assert _direct_handler() is None  # not attached to a loop: records are written at once
        handler.attach(asyncio.get_running_loop())
        logging.getLogger().addHandler(capture)  # a second handler (a test's capture, a file)
        assert _direct_handler() is None
        _write()
        await asyncio.sleep(0)
        assert [r.getMessage() for r in captured] == ["POST /api/v1/chat/completions 200 1.2ms"]
        assert captured[0].http["model"] == "acme/model" and captured[0].request_id == "req-unit"  # type: ignore[attr-defined]
        assert len(lines.entries()) == 1  # and the stderr handler still got its line
        logging.getLogger().removeHandler(capture)
        handler.setFormatter(logging.Formatter("%(message)s"))  # a text formatter
        assert _direct_handler() is None
        handler.setLevel(logging.WARNING)
        assert _direct_handler() is None
