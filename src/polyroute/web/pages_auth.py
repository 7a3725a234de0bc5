"""Sign up, sign in, sign out.

Unknown email and wrong password give the same page, status and work (one Argon2id verification).
The first account of an empty install becomes admin; an admin can close open sign-up.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from polyroute.accounts.passwords import (
    WeakPassword,
    check_password_rules,
    hash_password,
    needs_rehash,
    verify_password,
)
from polyroute.accounts.store import AccountExists, normalize_email
from polyroute.web.auth import (
    anonymous_csrf_token,
    clear_session_cookie,
    page,
    safe_next,
    set_anonymous_csrf_cookie,
    set_session_cookie,
)
from polyroute.web.rendering import render
from polyroute.web.state import web_services

BAD_LOGIN = "Incorrect email or password."


def _form_page(request: Request, template: str, status: int = 200, **context: object) -> Response:
    # A signed-in visitor's forms carry the session's token (the guard checks that one); others double-submit.
    token = request.state.csrf_token or anonymous_csrf_token(request)
    response = render(
        request, template, status=status, csrf_token=token, next=request.query_params.get("next", ""), **context
    )
    set_anonymous_csrf_cookie(request, response, token)
    return response


async def _signed_in(request: Request, account_id: int, target: str | None) -> Response:
    web = web_services(request)
    old = request.state.session
    if old is not None:  # a new session id at every sign-in
        await end_session(request, old.id_hash, old.chat_key_hash)
    token, _ = await web.sessions.create(account_id)
    response = RedirectResponse(safe_next(target), status_code=303)
    set_session_cookie(request, response, token)
    return response


async def end_session(request: Request, id_hash: str, chat_key_hash: str | None) -> None:
    web = web_services(request)
    await web.sessions.delete(id_hash)
    if chat_key_hash:
        await web.core.accounts.revoke_key(chat_key_hash)
        web.core.authenticator.forget(chat_key_hash)


@page(signed_in=False)
async def login(request: Request) -> Response:
    if request.method == "GET":
        return _form_page(request, "login.html", signup_open=await web_services(request).instance.signup_open())
    web = web_services(request)
    form = request.state.form
    email = form.get("email", "").strip().lower()
    password = form.get("password", "")
    address = request.client.host if request.client else "?"
    wait_s = await web.limiter.attempt(email, address)  # takes a failure slot, given back on success
    if wait_s:
        minutes = max(1, round(wait_s / 60))
        message = f"Too many sign-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
        response = _form_page(request, "login.html", status=429, error=message, email=email)
        response.headers["Retry-After"] = str(wait_s)
        return response
    found = await web.passwords.hash_for(email)
    stored = None if found is None else found[1]
    if found is None or not verify_password(stored, password):
        return _form_page(request, "login.html", status=400, error=BAD_LOGIN, email=email)
    account_id = found[0]
    await web.limiter.succeeded(email, address)
    if stored is not None and needs_rehash(stored):
        await web.passwords.set_hash(account_id, hash_password(password))
    return await _signed_in(request, account_id, form.get("next"))


@page(signed_in=False)
async def signup(request: Request) -> Response:
    web = web_services(request)
    is_empty = await web.instance.account_count() == 0
    if not is_empty and not await web.instance.signup_open():
        return render(request, "error.html", status=403, title="Sign-up is closed", message="Ask an administrator.")
    if request.method == "GET":
        return _form_page(request, "signup.html")
    form = request.state.form
    email, password = form.get("email", ""), form.get("password", "")
    try:
        email = normalize_email(email)
        check_password_rules(password)
    except WeakPassword as error:
        return _form_page(request, "signup.html", status=400, error=f"Password: {error}", email=email)
    except ValueError:
        return _form_page(request, "signup.html", status=400, error="Enter a valid email address.", email=email)
    try:
        account = await web.core.accounts.create_account(email, is_admin=is_empty)
    except AccountExists:
        return _form_page(request, "signup.html", status=400, error="That email cannot be used.", email=email)
    await web.passwords.set_password(account.id, password)
    return await _signed_in(request, account.id, form.get("next") or "/keys")


@page()
async def logout(request: Request) -> Response:
    session = request.state.session
    await end_session(request, session.id_hash, session.chat_key_hash)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response)
    return response
