"""The ASGI application: routes under `/api/v1` (what OpenRouter clients use) and `/v1`."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from polyroute.domain.errors import GatewayError
from polyroute.http import (
    routes_accounting,
    routes_admin,
    routes_chat,
    routes_health,
    routes_keys,
    routes_metrics,
    routes_models,
)
from polyroute.http.chat_dispatch import ChatDispatch
from polyroute.http.responses import handle_gateway_error, handle_http_exception, handle_unexpected
from polyroute.http.services import start_services, stop_services
from polyroute.observability import log_handler
from polyroute.observability.middleware import ObservabilityMiddleware
from polyroute.settings import Settings, load_settings
from polyroute.web.routes import web_routes
from polyroute.web.state import close_web_services

API_PREFIXES = ("/api/v1", "/v1")


def api_routes() -> list[Route]:
    return [
        Route("/chat/completions", routes_chat.chat_completions, methods=["POST"]),
        Route("/models", routes_models.list_models, methods=["GET"]),
        Route("/models/{author}/{slug}/endpoints", routes_models.model_endpoints, methods=["GET"]),
        Route("/key", routes_keys.current_key, methods=["GET"]),
        Route("/auth/key", routes_keys.current_key, methods=["GET"]),
        Route("/keys", routes_keys.list_keys, methods=["GET"]),
        Route("/keys", routes_keys.create_key, methods=["POST"]),
        Route("/keys/{hash}", routes_keys.get_key, methods=["GET"]),
        Route("/keys/{hash}", routes_keys.update_key, methods=["PATCH"]),
        Route("/keys/{hash}", routes_keys.delete_key, methods=["DELETE"]),
        Route("/credits", routes_accounting.credits, methods=["GET"]),
        Route("/generation", routes_accounting.generation, methods=["GET"]),
        Route("/activity", routes_accounting.activity, methods=["GET"]),
        Route("/admin/endpoints", routes_admin.endpoints_health, methods=["GET"]),  # admin accounts only
    ]


def _tune_gc() -> None:
    """Everything built at startup (modules, the catalog, SQLAlchemy's compiled statements) lives as
    long as the process: frozen, the collector's full passes no longer walk it (without this, each
    took about 58 ms under load, 4 % of the CPU: issue #9). The young generation is collected every
    10,000 allocations rather than 700: a request's own objects mostly die by reference counting,
    and each pass costs about the same whatever the threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def create_server_app() -> Starlette:
    """`polyroute serve`'s app factory (one call per worker process): the app, with the process's
    garbage collector tuned once the services are up. Tests build apps in their own process with
    `create_app` and keep their collector as it is."""
    return create_app(tune_gc=True)


def create_app(settings: Settings | None = None, *, tune_gc: bool = False) -> Starlette:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.services = await start_services(settings)
        if tune_gc:
            _tune_gc()
        log_handler.attach_to_loop(asyncio.get_running_loop())  # stderr lines: one write per loop pass
        try:
            yield
        finally:
            try:
                await close_web_services(app.state)
                await stop_services(app.state.services)
            finally:
                log_handler.detach_from_loop()

    routes = api_routes()
    # The hot path at the top level: matched by one dict lookup in ChatDispatch (issue #9); the
    # router keeps them for other methods' 405 and for a server mounted under a root path.
    chat_routes = [
        Route(f"{prefix}/chat/completions", routes_chat.chat_completions, methods=["POST"]) for prefix in API_PREFIXES
    ]
    middleware = [Middleware(ObservabilityMiddleware)]  # request ids, metrics, access log (pure ASGI)
    if settings.tracing != "off":  # inside it: the span sees the request id, the access line the trace id
        from polyroute.observability.tracing_middleware import TracingMiddleware

        middleware.append(Middleware(TracingMiddleware))
    middleware.append(Middleware(ChatDispatch, routes=chat_routes))  # innermost: sees ids, spans, metrics
    return Starlette(
        routes=[
            *chat_routes,
            Route("/healthz", routes_health.healthz, methods=["GET"]),
            Route("/readyz", routes_health.readyz, methods=["GET"]),
            Route("/metrics", routes_metrics.metrics_endpoint, methods=["GET"]),  # docs/operations.md
            *(Mount(prefix, routes=routes) for prefix in API_PREFIXES),
            *web_routes(),  # the web app (docs/web.md); it never accepts API keys, the API never reads cookies
        ],
        exception_handlers={
            GatewayError: handle_gateway_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        middleware=middleware,
        lifespan=lifespan,
    )
