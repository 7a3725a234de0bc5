"""The keys page: create (shown once, with a copy button), list with usage, disable, delete."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from polyroute.accounts.types import ApiKey
from polyroute.billing import ledger_store
from polyroute.billing.periods import utc_today
from polyroute.domain.money import MoneyFormatError, usd_to_pusd
from polyroute.web.auth import page
from polyroute.web.rendering import render
from polyroute.web.state import web_services

CHAT_KEY_NAME = "Chatroom (web session)"
LIMIT_RESETS = ("daily", "weekly", "monthly")


async def _owned_key(request: Request) -> ApiKey | None:
    """The key named in the path if it belongs to the signed-in account (else None: a 404)."""
    key_hash = str(request.path_params["hash"]).strip().lower()
    key = await web_services(request).core.accounts.find_key(key_hash)
    if key is None or key.revoked_at is not None or key.account_id != request.state.user.id:
        return None
    return key


def not_found(request: Request) -> Response:
    return render(request, "error.html", status=404, title="Not found", message="There is nothing here.")


async def _keys_page(request: Request, status: int = 200, **context: object) -> Response:
    core = web_services(request).core
    keys = await core.accounts.list_keys(request.state.user.id)
    rows = []
    async with core.engine.connect() as conn:
        for key in keys:
            rows.append((key, await ledger_store.read_key_spend(conn, key.hash, utc_today())))
    return render(request, "keys.html", status=status, rows=rows, resets=LIMIT_RESETS, **context)


def _parse_new_key(form: dict[str, str]) -> tuple[str, int | None, str | None, datetime | None]:
    name = form.get("name", "").strip()
    if not name or len(name) > 100:
        raise ValueError("Give the key a name (up to 100 characters).")
    limit_text = form.get("limit", "").strip()
    try:
        limit = usd_to_pusd(limit_text) if limit_text else None
    except MoneyFormatError:
        raise ValueError("The credit limit must be an amount of USD, like 5 or 0.50.") from None
    if limit is not None and limit < 0:
        raise ValueError("The credit limit cannot be negative.")
    reset = form.get("limit_reset") or None
    if reset is not None and reset not in LIMIT_RESETS:
        raise ValueError("Pick a reset period from the list.")
    expires_text = form.get("expires", "").strip()
    expires = None
    if expires_text:
        try:
            day = date.fromisoformat(expires_text)
        except ValueError:
            raise ValueError("The expiry must be a date.") from None
        expires = datetime.combine(day + timedelta(days=1), time(), UTC)  # the end of that UTC day
        if expires <= datetime.now(UTC):
            raise ValueError("The expiry must be in the future.")
    return name, limit, reset, expires


@page()
async def keys(request: Request) -> Response:
    if request.method == "GET":
        return await _keys_page(request)
    try:
        name, limit, reset, expires = _parse_new_key(request.state.form)
    except ValueError as error:
        return await _keys_page(request, status=400, error=str(error))
    plaintext, key = await web_services(request).core.accounts.create_key(
        request.state.user.id, name, limit_pusd=limit, limit_reset=reset, expires_at=expires
    )
    return await _keys_page(request, status=201, new_key=plaintext, new_key_name=key.name)


@page()
async def toggle_key(request: Request) -> Response:
    key = await _owned_key(request)
    if key is None:
        return not_found(request)
    core = web_services(request).core
    await core.accounts.update_key(key.hash, disabled=not key.disabled)
    core.authenticator.forget(key.hash)
    return RedirectResponse("/keys", status_code=303)


@page()
async def delete_key(request: Request) -> Response:
    key = await _owned_key(request)
    if key is None:
        return not_found(request)
    core = web_services(request).core
    await core.accounts.revoke_key(key.hash)
    core.authenticator.forget(key.hash)
    return RedirectResponse("/keys", status_code=303)
