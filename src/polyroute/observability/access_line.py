"""The access line: one per HTTP request, written straight to the serving loop's handler when it can be.

Through `Logger.info` a line costs about 120,000 instructions, 7 % of a whole non-streaming chat
request (callgrind, issue #9), a quarter of it in a `LogRecord` with some twenty attributes, the
logger and handler walk, the handler's filters and `getMessage`. When logging is set up as
`polyroute serve` sets it up (the only handler on the way to the root is one coalescing stderr
handler with the JSON formatter, attached to this loop; no logger filters), the line is formatted
from the fields directly by that same formatter and queued on that handler: the same text, scrubbed
the same way, in the same order with every other line, for about 90,000 instructions. Anything else
(a test's capture handler, a text formatter on a terminal, a filter, a second handler) takes the
ordinary `Logger.info` path.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from polyroute.observability.log_format import JsonFormatter, RequestIdFilter
from polyroute.observability.log_handler import CoalescingStreamHandler

access_log = logging.getLogger("polyroute.access")
_FORMAT = "%s %s %d %.1fms"


def log_access(
    method: str, route: str, status: int, duration_ms: float, request_id: str, fields: dict[str, Any]
) -> None:
    """Write the access line (INFO on `polyroute.access`; the caller checked that it is enabled)."""
    handler = _direct_handler()
    if handler is not None:
        formatter: JsonFormatter = handler.formatter  # type: ignore[assignment]  # checked in _direct_handler
        message = _FORMAT % (method, route, status, duration_ms)
        try:
            line: str | None = formatter.format_fields(
                time.time(), "INFO", access_log.name, message, request_id, fields
            )
        except Exception:  # whatever went wrong, the ordinary path below reports it as it reports any record
            line = None
        if line is not None:
            handler.emit_line(line)
            return
    access_log.info(_FORMAT, method, route, status, duration_ms, extra={"request_id": request_id, "http": fields})


def _direct_handler() -> CoalescingStreamHandler | None:
    """The one handler an INFO record of `access_log` would reach, if the direct path gives the same line."""
    found: CoalescingStreamHandler | None = None
    logger: logging.Logger | None = access_log
    while logger is not None:
        if logger.filters:
            return None
        for handler in logger.handlers:
            if found is not None or type(handler) is not CoalescingStreamHandler:
                return None
            found = handler
        logger = logger.parent if logger.propagate else None
    if found is None or found.level > logging.INFO or type(found.formatter) is not JsonFormatter:
        return None
    if not found.on_loop_thread():
        return None
    for filter_ in found.filters:  # the request id filter adds nothing to a line that has the id
        if type(filter_) is not RequestIdFilter:
            return None
    return found
