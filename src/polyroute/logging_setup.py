"""Logging: level and format from settings; JSON lines for collectors, plain text on a terminal.

`POLYROUTE_LOG_FORMAT`: `json`, `text`, or `auto` (text when stderr is a terminal, else JSON).
Every line gets the current request id and is scrubbed of secrets (provider keys from the
environment, API-key-, bearer-, cookie- and URL-credential-shaped text). Bodies are never logged.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from polyroute.observability.log_format import JsonFormatter, RequestIdFilter, TextFormatter
from polyroute.observability.log_handler import CoalescingStreamHandler
from polyroute.observability.scrub import Scrubber
from polyroute.settings import load_settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Database drivers log each statement with its bound values (password, key and session hashes):
# never below these levels, whatever POLYROUTE_LOG_LEVEL says.
QUIET_LOGGERS = {"aiosqlite": "INFO", "sqlalchemy.engine": "WARNING", "asyncpg": "INFO"}


def _use_json(log_format: str) -> bool:
    if log_format == "auto":
        return not sys.stderr.isatty()
    return log_format == "json"


def make_formatter() -> logging.Formatter:
    """Formatter factory (also used by uvicorn's dictConfig in every worker)."""
    # Neither formatter prints process or thread fields, nor where a call was made from: skip
    # gathering them for every record (getpid() is a system call, and finding the caller walks the
    # stack; about 1 % of a request with its access line; issue #9). These are the switches the
    # logging documentation's "Optimization" section names.
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    logging._srcfile = None
    settings = load_settings()
    scrubber = Scrubber.from_env(settings.env)
    return JsonFormatter(scrubber) if _use_json(settings.log_format) else TextFormatter(scrubber)


def configure_logging(level: str) -> None:
    handler = CoalescingStreamHandler()  # writes once per event-loop pass once the app attaches it
    handler.setFormatter(make_formatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, floor in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(floor)


def uvicorn_log_config(level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"polyroute": {"()": "polyroute.logging_setup.make_formatter"}},
        "filters": {"request_id": {"()": "polyroute.observability.log_format.RequestIdFilter"}},
        "handlers": {
            "stderr": {
                "class": "polyroute.observability.log_handler.CoalescingStreamHandler",
                "formatter": "polyroute",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn.access": {"level": "WARNING"},
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            **{name: {"level": floor} for name, floor in QUIET_LOGGERS.items()},
        },
    }
