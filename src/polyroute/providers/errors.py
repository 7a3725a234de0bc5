"""How an upstream call failed, in terms the relay can act on (retry, fail over, report)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    CONNECT = "connect"  # could not connect / connection refused / DNS
    TIMEOUT = "timeout"  # connect, first-byte or idle timeout
    HTTP = "http"  # the upstream answered with an error status
    PROTOCOL = "protocol"  # unparseable body, broken SSE, stream cut without an end


@dataclass(slots=True)
class UpstreamError(Exception):
    """An upstream failure. `raw` is the upstream's own error text, truncated, never a secret."""

    kind: FailureKind
    message: str
    status: int | None = None
    raw: str | None = None
    retry_after_s: float | None = None

    def __str__(self) -> str:
        return self.message

    @property
    def retryable(self) -> bool:
        """Worth trying again elsewhere: network trouble, timeouts, 408/429/5xx, garbage."""
        if self.kind is not FailureKind.HTTP:
            return True
        return self.status is not None and (self.status in (408, 409, 429) or self.status >= 500)
