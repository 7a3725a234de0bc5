"""The web app's routes, mounted at the root by the app factory (the API stays under /api/v1 and /v1)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from polyroute.web import pages_activity, pages_admin, pages_auth, pages_chat, pages_credits, pages_keys, pages_models
from polyroute.web.rendering import STATIC_DIR

POST = ["POST"]
GET_POST = ["GET", "POST"]


async def home(request: Request) -> Response:
    return RedirectResponse("/chat", status_code=303)


def web_routes() -> list[BaseRoute]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/login", pages_auth.login, methods=GET_POST),
        Route("/signup", pages_auth.signup, methods=GET_POST),
        Route("/logout", pages_auth.logout, methods=POST),
        Route("/keys", pages_keys.keys, methods=GET_POST),
        Route("/keys/{hash}/toggle", pages_keys.toggle_key, methods=POST),
        Route("/keys/{hash}/delete", pages_keys.delete_key, methods=POST),
        Route("/chat", pages_chat.chat, methods=["GET"]),
        Route("/chat/key", pages_chat.chat_key, methods=POST),
        Route("/activity", pages_activity.activity, methods=["GET"]),
        Route("/activity.csv", pages_activity.activity_csv, methods=["GET"]),
        Route("/credits", pages_credits.credits, methods=["GET"]),
        Route("/credits/redeem", pages_credits.redeem, methods=POST),
        Route("/models", pages_models.models, methods=["GET"]),
        Route("/models/{author}/{slug:path}", pages_models.model_detail, methods=["GET"]),
        Route("/rankings", pages_models.rankings, methods=["GET"]),
        Route("/settings", pages_admin.settings, methods=["GET"]),
        Route("/settings/default-model", pages_admin.default_model, methods=POST),
        Route("/settings/providers", pages_admin.provider_preferences, methods=POST),
        Route("/settings/password", pages_admin.change_password, methods=POST),
        Route("/admin", pages_admin.admin, methods=["GET"]),
        Route("/admin/endpoints.json", pages_admin.endpoints_json, methods=["GET"]),
        Route("/admin/grant", pages_admin.grant, methods=POST),
        Route("/admin/codes", pages_admin.create_code, methods=POST),
        Route("/admin/signup", pages_admin.signup_toggle, methods=POST),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
