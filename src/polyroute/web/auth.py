"""Who is calling a page, and whether a state-changing request may proceed.

`page(...)` wraps every web handler: it resolves the session cookie, sends anonymous visitors of
private pages to the sign-in page, and refuses any non-GET request whose Origin is foreign or
whose CSRF token is missing or wrong (403). Signed-in forms carry the session's synchronizer
token; the anonymous sign-in and sign-up forms use a double-submit cookie.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from polyroute.accounts.sessions import ABSOLUTE_TIMEOUT, WebSession
from polyroute.accounts.types import Account
from polyroute.web.forms import Form, FormTooLarge, read_form
from polyroute.web.rendering import render
from polyroute.web.state import web_services

SESSION_COOKIE = "polyroute_session"
SECURE_SESSION_COOKIE = "__Host-polyroute_session"  # over TLS: Secure, Path=/, no Domain
ANON_CSRF_COOKIE = "polyroute_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[[Request], Awaitable[Response]]


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def session_cookie_name(request: Request) -> str:
    return SECURE_SESSION_COOKIE if is_tls(request) else SESSION_COOKIE


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        session_cookie_name(request),
        token,
        max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
        path="/",
        secure=is_tls(request),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(session_cookie_name(request), path="/", secure=is_tls(request), httponly=True)


def anonymous_csrf_token(request: Request) -> str:
    """The double-submit token for sign-in forms: the cookie's value, or a new one to set."""
    existing = request.cookies.get(ANON_CSRF_COOKIE, "")
    return existing if 20 <= len(existing) <= 100 else secrets.token_urlsafe(32)


def set_anonymous_csrf_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        ANON_CSRF_COOKIE, token, path="/", secure=is_tls(request), httponly=True, samesite="strict", max_age=86400
    )


def safe_next(target: str | None) -> str:
    """Only a local path may be a redirect target (no `//host`, no scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/chat"
    return target


def _origin_ok(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def forbidden(request: Request, message: str) -> Response:
    return render(request, "error.html", status=403, title="Forbidden", message=message)


async def _session(request: Request) -> tuple[WebSession, Account] | None:
    token = request.cookies.get(session_cookie_name(request)) or ""
    if not token:
        return None
    web = web_services(request)
    session = await web.sessions.resolve(token)
    if session is None:
        return None
    account = await web.core.accounts.get_account(session.account_id)
    return None if account is None else (session, account)


async def _csrf_ok(request: Request, expected: str) -> bool:
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            request.state.form = await read_form(request)
            presented = request.state.form.get(CSRF_FIELD)
    return bool(presented) and bool(expected) and hmac.compare_digest(presented or "", expected)


def page(*, signed_in: bool = True, admin: bool = False) -> Callable[[Handler], Handler]:
    """Guard a web handler; see the module docstring. `signed_in=False` allows anonymous visitors."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            request.state.form = Form()
            found = await _session(request)
            request.state.user = None if found is None else found[1]
            request.state.session = None if found is None else found[0]
            request.state.csrf_token = "" if found is None else found[0].csrf_token
            changing = request.method not in SAFE_METHODS
            if found is None and (signed_in or admin):
                if changing:
                    return forbidden(request, "Sign in first.")
                return RedirectResponse("/login?next=" + quote(request.url.path), status_code=303)
            if admin and not request.state.user.is_admin:
                return forbidden(request, "This page is for administrators.")
            if changing:
                expected = found[0].csrf_token if found else request.cookies.get(ANON_CSRF_COOKIE, "")
                try:
                    if not _origin_ok(request) or not await _csrf_ok(request, expected):
                        return forbidden(request, "The form expired or did not come from this site; reload and retry.")
                except FormTooLarge:
                    return forbidden(request, "The form is too large.")
            return await handler(request)

        guarded.__dict__["web_guarded"] = True
        return guarded

    return decorate
