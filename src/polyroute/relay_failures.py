"""How failed upstream attempts become the one error a client sees."""

from __future__ import annotations

from typing import Any

from polyroute.domain.errors import GatewayError, RateLimited, UpstreamFailed
from polyroute.providers.errors import FailureKind, UpstreamError
from polyroute.routing.plan import Attempt

# Statuses that mean the request itself is wrong: another provider would refuse it too.
_REQUEST_FAULT_STATUSES = frozenset({400, 404, 413, 422})


def is_request_fault(error: UpstreamError) -> bool:
    return error.kind is FailureKind.HTTP and error.status in _REQUEST_FAULT_STATUSES


class ProviderRejected(GatewayError):
    """The upstream refused the request itself (its 4xx), passed on with the same status."""

    error_type = "invalid_request"

    def __init__(self, status: int, message: str, metadata: dict[str, Any]) -> None:
        super().__init__(message, metadata=metadata)
        self.status = status


def upstream_failure(failures: list[tuple[Attempt, UpstreamError]]) -> GatewayError:
    """The last attempt's failure decides the status; earlier ones go in `previous_errors`."""
    attempt, error = failures[-1]
    metadata: dict[str, Any] = {
        "provider_name": attempt.provider.display_name,
        "raw": error.raw if error.raw is not None else error.message,
    }
    if len(failures) > 1:
        metadata["previous_errors"] = [
            {"provider": a.provider.display_name, "code": e.status, "message": e.message} for a, e in failures[:-1]
        ]
    if is_request_fault(error):
        assert error.status is not None
        return ProviderRejected(error.status, "Provider returned error", metadata)
    if error.kind is FailureKind.HTTP and error.status == 429:
        headers = {}
        if error.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
        return RateLimited("Provider is rate limited; try again later", metadata=metadata, headers=headers)
    if error.kind is FailureKind.TIMEOUT:
        return UpstreamFailed("Provider timed out", metadata=metadata)
    return UpstreamFailed("Provider returned error", metadata=metadata)
