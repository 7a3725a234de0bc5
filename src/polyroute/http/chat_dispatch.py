"""POST /chat/completions straight to its handler, past Starlette's router and exception layers.

Every chat request used to go through Starlette's ExceptionMiddleware, its router, the route's
`request_response` wrapper and the exception-handler wrapper around it: about 5 % of a request's
CPU under load (issue #9), for a route whose handler and errors are ours anyway. This pure ASGI
middleware sits innermost (inside the observability and tracing middleware, so request ids,
metrics, the access line and spans are unchanged), answers the chat routes itself with the same
error handling as the app's exception handlers, and passes everything else on. Other methods on
the chat path (GET, say) still reach the router and get its 405.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from polyroute.domain.errors import GatewayError
from polyroute.http import routes_chat
from polyroute.http.responses import handle_gateway_error, handle_unexpected


class ChatDispatch:
    def __init__(self, app: ASGIApp, routes: Iterable[Route]) -> None:
        self.app = app
        self._routes = {route.path: route for route in routes}  # full path -> the route (metrics label)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None or scope.get("root_path"):  # behind a path prefix: the router knows how to strip it
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive, send)
        response: ASGIApp
        try:
            response = await routes_chat.chat_completions(request)
        except GatewayError as error:  # the app's own exception handlers, as the router would call them
            response = await handle_gateway_error(request, error)
        except Exception as error:  # logged, generic 500 envelope
            response = await handle_unexpected(request, error)
        await response(scope, receive, send)
