"""The admin API: `GET /api/v1/admin/endpoints`, every upstream endpoint's live health, for operators.

Authenticated with an API key (inference or management) of an admin account (`accounts.is_admin`):
no key → 401, a key of another account → 403, both in OpenRouter's error envelope. The numbers are
this process's `HealthStore` view (with Redis, every process's outcomes merged; docs/routing.md).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from polyroute.domain.errors import Forbidden
from polyroute.http.responses import json_response
from polyroute.http.services import Services
from polyroute.routing.health import HEALTHY, EndpointKey, EndpointStats, Percentiles

_TRUE = ("1", "true", "yes")


async def require_admin(request: Request) -> Services:
    services: Services = request.app.state.services
    key = await services.authenticator.authenticate(request.headers.get("authorization"))
    account = await services.accounts.get_account(key.account_id)
    if account is None or not account.is_admin:
        raise Forbidden("Only keys of an admin account can use the admin API")
    return services


def _iso(monotonic_s: float | None) -> str | None:
    """A MemoryHealth clock value (time.monotonic) as an ISO 8601 UTC time."""
    if monotonic_s is None:
        return None
    wall_s = time.time() + (monotonic_s - time.monotonic())
    return datetime.fromtimestamp(wall_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _pct(found: Percentiles | None, scale: float = 1.0) -> dict[str, float] | None:
    if found is None:
        return None
    return {name: round(value * scale, 3) for name, value in found.as_dict().items()}


def endpoint_health_body(key: EndpointKey, provider_name: str, stats: EndpointStats, measured: bool) -> dict[str, Any]:
    return {
        "model": key[0],
        "provider": key[1],
        "provider_name": provider_name,
        "state": stats.state.value,  # ok | degraded | ejected | half_open | probing
        "measured": measured,  # False: no attempt recorded in the stats window yet
        "uptime_last_30m": None if stats.uptime is None else round(stats.uptime * 100, 2),  # percent
        "ttft_ms": _pct(stats.ttft_s, 1000),
        "latency_ms": _pct(stats.latency_s, 1000),
        "throughput_tps": _pct(stats.throughput_tps),
        "consecutive_failures": stats.consecutive_failures,
        "ejected_until": _iso(stats.ejected_until_s),
    }


async def endpoints_health(request: Request) -> Response:
    """Routable endpoints plus any with recorded traffic (`?include_unavailable=true`: every endpoint)."""
    services = await require_admin(request)
    catalog = services.catalog
    every = request.query_params.get("include_unavailable", "").lower() in _TRUE
    stats = services.relay.health.all_stats()
    keys: dict[EndpointKey, str] = {}
    for model in catalog.models.values():
        for endpoint in model.endpoints:
            key = (model.id, endpoint.provider)
            if every or key in stats or catalog.is_routable(endpoint.provider):
                keys[key] = catalog.provider(endpoint.provider).display_name
    for key in stats:  # e.g. a model another process serves that this catalog does not list
        keys.setdefault(key, key[1])
    data = [endpoint_health_body(key, keys[key], stats.get(key, HEALTHY), key in stats) for key in sorted(keys)]
    body = {"data": data, "generated_at": _iso(time.monotonic())}
    return json_response(body)
