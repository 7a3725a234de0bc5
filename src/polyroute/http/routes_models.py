"""GET /models and GET /models/{author}/{slug}/endpoints (public, no key needed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from polyroute.domain.errors import NotFound
from polyroute.http.responses import json_response
from polyroute.http.services import Services


async def list_models(request: Request) -> Response:
    services: Services = request.app.state.services
    include = request.query_params.get("include_unavailable", "").lower() in ("1", "true", "yes")
    return Response(services.models.list_json(include), media_type="application/json")


async def model_endpoints(request: Request) -> Response:
    services: Services = request.app.state.services
    model_id = f"{request.path_params['author']}/{request.path_params['slug']}"
    model = services.catalog.models.get(model_id)
    if model is None:
        raise NotFound(f"No endpoints found for {model_id}.")
    return json_response(services.models.endpoints(model))
