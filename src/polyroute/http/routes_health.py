"""GET /healthz (the process is up) and GET /readyz (it can serve: database reachable).

`/readyz` also lists the upstream endpoints that are not healthy (recent failures, circuit open),
for operators; an unhealthy upstream does not make the gateway itself unready.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from polyroute.http.responses import json_response
from polyroute.http.services import Services
from polyroute.routing.health import HealthState


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"
        checks["database"] = f"unavailable: {type(exc).__name__}"
    routable = len(services.catalog.list_models())
    ready = checks["database"] == "ok"
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
        "routable_models": routable,
        "endpoints": _unhealthy_endpoints(services),
    }
    return json_response(body, 200 if ready else 503)


def _unhealthy_endpoints(services: Services) -> list[dict[str, Any]]:
    details = []
    for (model_id, provider), stats in sorted(services.relay.health.all_stats().items()):
        if stats.state is HealthState.OK:
            continue
        details.append(
            {
                "model": model_id,
                "provider": provider,
                "state": stats.state.value,
                "uptime_last_30m": None if stats.uptime is None else round(stats.uptime * 100, 2),
                "consecutive_failures": stats.consecutive_failures,
            }
        )
    return details
