"""Settings (default model, provider preferences, password) for everyone; Admin (accounts, providers
with their endpoints' live health, grants, codes, sign-up)."""

from __future__ import annotations

import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from polyroute.accounts.passwords import WeakPassword, hash_password, verify_password
from polyroute.billing import ledger_store
from polyroute.domain.money import MoneyFormatError, usd_to_pusd
from polyroute.web.auth import page
from polyroute.web.endpoint_health import endpoint_rows
from polyroute.web.provider_prefs import PreferenceError, as_typed, for_form, from_form
from polyroute.web.rendering import SECURITY_HEADERS, render, usd
from polyroute.web.state import web_services


async def _settings_page(request: Request, status: int = 200, **context: object) -> Response:
    core = web_services(request).core
    providers = sorted(core.catalog.providers.values(), key=lambda p: p.display_name.lower())
    if "prefs" not in context:
        context["prefs"] = for_form(await core.provider_defaults.get(request.state.user.id))
    return render(
        request, "settings.html", status=status, models=core.catalog.list_models(), providers=providers, **context
    )


@page()
async def settings(request: Request) -> Response:
    return await _settings_page(request)


@page()
async def default_model(request: Request) -> Response:
    core = web_services(request).core
    wanted = request.state.form.get("default_model", "").strip() or None
    if wanted is not None and wanted not in core.catalog.models:
        return await _settings_page(request, status=400, error="Pick a model from the list.")
    async with core.engine.begin() as conn:
        from polyroute.db.tables import accounts

        await conn.execute(accounts.update().where(accounts.c.id == request.state.user.id).values(default_model=wanted))
    request.state.user = await core.accounts.get_account(request.state.user.id)
    return await _settings_page(request, notice="Default model saved.")


@page()
async def provider_preferences(request: Request) -> Response:
    core = web_services(request).core
    try:
        preferences = from_form(request.state.form, core.catalog.providers)
    except PreferenceError as error:
        # Show what was typed, so one mistake does not lose the rest of the form.
        typed = as_typed(request.state.form)
        return await _settings_page(request, status=400, error=f"Provider preferences: {error}", prefs=typed)
    await core.provider_defaults.set(request.state.user.id, preferences)
    return await _settings_page(request, notice="Provider preferences saved; they apply to every request of your keys.")


@page()
async def change_password(request: Request) -> Response:
    web = web_services(request)
    form, user = request.state.form, request.state.user
    if not verify_password(await web.passwords.hash_for_account(user.id), form.get("current_password", "")):
        return await _settings_page(request, status=400, error="The current password is not right.")
    try:
        new_hash = hash_password(form.get("new_password", ""))
    except WeakPassword as error:
        return await _settings_page(request, status=400, error=f"New password: {error}")
    await web.passwords.set_hash(user.id, new_hash)
    for key_hash in await web.sessions.delete_for_account(user.id, keep=request.state.session.id_hash):
        await web.core.accounts.revoke_key(key_hash)  # other sessions' chatroom keys end with them
    return await _settings_page(request, notice="Password changed; your other sessions were signed out.")


async def _admin_page(request: Request, status: int = 200, **context: object) -> Response:
    web = web_services(request)
    core = web.core
    rows = []
    async with core.engine.connect() as conn:
        for account in await core.accounts.list_accounts():
            rows.append((account, await ledger_store.read_balance(conn, account.id)))
    providers = []
    for slug, spec in sorted(core.catalog.providers.items()):
        endpoints = sum(1 for m in core.catalog.models.values() for e in m.endpoints if e.provider == slug)
        providers.append((spec, core.catalog.is_routable(slug), endpoints))
    all_endpoints = request.query_params.get("endpoints") == "all"
    return render(
        request, "admin.html", status=status, accounts=rows, providers=providers, codes=await web.codes.list(),
        signup_open=await web.instance.signup_open(), endpoints=endpoint_rows(core, all_endpoints),
        all_endpoints=all_endpoints, **context,
    )  # fmt: skip


def _amount(text: str) -> int:
    try:
        amount = usd_to_pusd(text.strip())
    except MoneyFormatError:
        raise ValueError("The amount must be USD, like 10 or 2.50.") from None
    if amount <= 0:
        raise ValueError("The amount must be positive.")
    return amount


@page(admin=True)
async def admin(request: Request) -> Response:
    return await _admin_page(request)


@page(admin=True)
async def endpoints_json(request: Request) -> Response:
    """The endpoints table's rows, polled by the admin page every few seconds."""
    rows = endpoint_rows(web_services(request).core, request.query_params.get("endpoints") == "all")
    return JSONResponse({"endpoints": rows, "at": time.time()}, headers=SECURITY_HEADERS)


@page(admin=True)
async def grant(request: Request) -> Response:
    core = web_services(request).core
    form = request.state.form
    account = await core.accounts.get_account_by_email(form.get("email", ""))
    if account is None:
        return await _admin_page(request, status=400, error="No account has that email.")
    try:
        amount = _amount(form.get("amount", ""))
    except ValueError as error:
        return await _admin_page(request, status=400, error=str(error))
    note = form.get("note", "").strip()[:200] or f"granted by {request.state.user.email}"
    async with core.engine.begin() as conn:
        await ledger_store.grant(conn, account.id, amount, f"grant-{uuid.uuid4().hex}", note)
    core.ledger.balance_changed(account.id)
    return await _admin_page(request, notice=f"Granted {usd(amount)} to {account.email}.")


@page(admin=True)
async def create_code(request: Request) -> Response:
    try:
        amount = _amount(request.state.form.get("amount", ""))
    except ValueError as error:
        return await _admin_page(request, status=400, error=str(error))
    code = await web_services(request).codes.create(amount, request.state.user.id)
    return await _admin_page(request, status=201, new_code=code, new_code_amount=amount)


@page(admin=True)
async def signup_toggle(request: Request) -> Response:
    is_open = request.state.form.get("open") == "1"
    await web_services(request).instance.set_signup_open(is_open)
    return await _admin_page(request, notice=f"Sign-up is now {'open' if is_open else 'closed'}.")
