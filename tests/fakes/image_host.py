"""A tiny image host on 127.0.0.1, for adapters that download remote images before calling upstream."""

from __future__ import annotations

import base64

from aiohttp import web

from tests.fakes.loopback import LoopbackUpstream

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


class ImageHost(LoopbackUpstream):
    """Serves /cat.png (a PNG), /redirect (to it) and /page.html (not an image)."""

    thread_name = "fake-image-host"

    def add_routes(self, app: web.Application) -> None:
        async def png(request: web.Request) -> web.Response:
            await self.record(request)
            return web.Response(body=PNG, content_type="image/png")

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound("/cat.png")

        async def page(request: web.Request) -> web.Response:
            return web.Response(text="<html></html>", content_type="text/html")

        app.router.add_get("/cat.png", png)
        app.router.add_get("/redirect", redirect)
        app.router.add_get("/page.html", page)
