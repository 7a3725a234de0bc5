"""What one HTTP request has told us so far (request id, key, generation), held in a context variable.

The middleware creates it; the relay's generation observer fills it in; the access log line and
every log record of the request read it. Contextvars follow the request's task, so streaming works.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class RequestContext:
    request_id: str
    key_hash: str | None = None
    generation_id: str | None = None
    model: str | None = None
    provider: str | None = None
    outcome: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_pusd: int | None = None
    generation_ms: int | None = None  # relay time from acceptance to the generation's end
    ttft_ms: int | None = None
    trace_id: str | None = None  # 32 hex digits when tracing is on (for the access log line)
    trace: Any = None  # the request's spans (observability.otel_traces.RequestTrace), only when tracing is on


_current: ContextVar[RequestContext | None] = ContextVar("polyroute_request", default=None)


def current_request() -> RequestContext | None:
    return _current.get()


def bind_request(context: RequestContext) -> Token[RequestContext | None]:
    return _current.set(context)


def unbind_request(token: Token[RequestContext | None]) -> None:
    _current.reset(token)
