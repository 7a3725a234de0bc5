"""The chatroom page, and the session-scoped API key its script uses to call the public chat API.

The browser calls `POST /api/v1/chat/completions` like any client, with a key minted for this
session (`POST /chat/key`, CSRF-checked): it expires with the session, is revoked at sign-out, and
a new mint revokes the previous one. Its spend is the user's, and it shows on the keys page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from polyroute.web.auth import page
from polyroute.web.pages_keys import CHAT_KEY_NAME
from polyroute.web.rendering import SECURITY_HEADERS, render
from polyroute.web.state import web_services

MAX_CHAT_MODELS = 4


@page()
async def chat(request: Request) -> Response:
    catalog = web_services(request).core.catalog
    models = catalog.list_models()
    default = request.state.user.default_model or catalog.default_model_id() or (models[0].id if models else "")
    return render(request, "chat.html", models=models, default_model=default, max_models=MAX_CHAT_MODELS)


@page()
async def chat_key(request: Request) -> Response:
    web = web_services(request)
    session = request.state.session
    if session.chat_key_hash:
        await web.core.accounts.revoke_key(session.chat_key_hash)
        web.core.authenticator.forget(session.chat_key_hash)
    plaintext, key = await web.core.accounts.create_key(
        request.state.user.id, CHAT_KEY_NAME, expires_at=session.expires_at
    )
    await web.sessions.set_chat_key(session.id_hash, key.hash)
    return JSONResponse({"key": plaintext, "hash": key.hash}, headers=SECURITY_HEADERS)
