"""The one error tree: each error knows its HTTP status, OpenRouter error_type and metadata.

Messages are written for clients: they never carry secrets, prompts or stack traces.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base of every error a client may see; rendered as OpenRouter's error envelope."""

    status = 500
    error_type = "server"

    def __init__(
        self,
        message: str,
        *,
        metadata: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, Any] = metadata or {}
        self.headers: dict[str, str] = headers or {}

    def envelope(self) -> dict[str, Any]:
        """OpenRouter's `{"error": {"code", "message", "metadata"}}` body."""
        metadata = {"error_type": self.error_type, **self.metadata}
        return {"error": {"code": self.status, "message": self.message, "metadata": metadata}}


class BadRequest(GatewayError):
    status = 400
    error_type = "invalid_request"


class ContextLengthExceeded(BadRequest):
    error_type = "context_length_exceeded"


class Unauthorized(GatewayError):
    status = 401
    error_type = "authentication"


class PaymentRequired(GatewayError):
    status = 402
    error_type = "payment_required"


class Forbidden(GatewayError):
    status = 403
    error_type = "permission_denied"


class NotFound(GatewayError):
    status = 404
    error_type = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    error_type = "invalid_request"


class RequestTimeout(GatewayError):
    status = 408
    error_type = "timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    error_type = "payload_too_large"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_exceeded"


class InternalError(GatewayError):
    status = 500
    error_type = "server"


class UpstreamFailed(GatewayError):
    """The provider answered with an error or garbage: 502 with its name and raw error."""

    status = 502
    error_type = "provider_unavailable"


class NoProviderAvailable(GatewayError):
    status = 503
    error_type = "provider_overloaded"
