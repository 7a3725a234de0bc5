"""GET /healthz (the process is up) and GET /readyz (it can serve: database reachable)."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from polyroute.http.responses import json_response
from polyroute.http.services import Services


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
    body = {"status": "ready" if ready else "unavailable", "checks": checks, "routable_models": routable}
    return json_response(body, 200 if ready else 503)
