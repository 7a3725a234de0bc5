"""`GET /key` (and legacy `/auth/key`) for any key; the management API `GET/POST /keys`,
`GET/PATCH/DELETE /keys/{hash}` for management keys, scoped to the caller's account.

A management key manages the account's inference keys: management keys themselves are neither
listed nor reachable here (404), and another account's key is indistinguishable from a missing one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from polyroute.accounts.types import ApiKey
from polyroute.billing import ledger_store
from polyroute.billing.ledger_store import KeySpend
from polyroute.billing.periods import utc_today
from polyroute.domain.errors import Forbidden, NotFound
from polyroute.http.key_requests import parse_key_changes, parse_list_query, parse_new_key
from polyroute.http.key_views import current_key_body, key_object
from polyroute.http.responses import json_response
from polyroute.http.routes_chat import read_json_body
from polyroute.http.services import Services

_MAX_KEYS_PER_PAGE = 100


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def authenticate(request: Request) -> ApiKey:
    return await services_of(request).authenticator.authenticate(request.headers.get("authorization"))


async def authenticate_management(request: Request) -> ApiKey:
    key = await authenticate(request)
    if not key.is_management:
        raise Forbidden("Only management keys can perform this operation")
    return key


async def key_spend(services: Services, key_hash: str) -> KeySpend:
    async with services.engine.connect() as conn:
        return await ledger_store.read_key_spend(conn, key_hash, utc_today())


async def current_key(request: Request) -> Response:
    services = services_of(request)
    key = await authenticate(request)
    async with services.engine.connect() as conn:
        spend = await ledger_store.read_key_spend(conn, key.hash, utc_today())
        balance = await ledger_store.read_balance(conn, key.account_id)
    is_free_tier = balance is None or balance.credits_pusd == 0  # "has never paid for credits"
    return json_response({"data": current_key_body(key, spend, is_free_tier=is_free_tier)})


async def _managed_key(request: Request) -> tuple[Services, ApiKey, ApiKey]:
    """(services, the calling management key, the inference key named in the path)."""
    services = services_of(request)
    caller = await authenticate_management(request)
    key_hash = str(request.path_params["hash"]).strip().lower()
    found = await services.accounts.find_key(key_hash)
    if found is None or found.revoked_at is not None or found.is_management or found.account_id != caller.account_id:
        raise NotFound("API key not found")
    return services, caller, found


async def list_keys(request: Request) -> Response:
    services = services_of(request)
    caller = await authenticate_management(request)
    include_disabled, offset = parse_list_query(request.query_params)
    keys = [
        key
        for key in await services.accounts.list_keys(caller.account_id)
        if not key.is_management and (include_disabled or not key.disabled)
    ][offset : offset + _MAX_KEYS_PER_PAGE]
    data: list[dict[str, Any]] = []
    async with services.engine.connect() as conn:
        for key in keys:
            data.append(key_object(key, await ledger_store.read_key_spend(conn, key.hash, utc_today())))
    return json_response({"data": data})


async def create_key(request: Request) -> Response:
    services = services_of(request)
    caller = await authenticate_management(request)
    new = parse_new_key(await read_json_body(request, services.settings.max_body_bytes))
    plaintext, key = await services.accounts.create_key(
        caller.account_id,
        new.name,
        limit_pusd=new.limit_pusd,
        limit_reset=new.limit_reset,
        expires_at=new.expires_at,
        rpm=new.rpm,
        tpm=new.tpm,
    )
    return json_response({"data": key_object(key, KeySpend()), "key": plaintext}, status=201)


async def get_key(request: Request) -> Response:
    services, _, key = await _managed_key(request)
    return json_response({"data": key_object(key, await key_spend(services, key.hash))})


async def update_key(request: Request) -> Response:
    services, _, key = await _managed_key(request)
    changes = parse_key_changes(await read_json_body(request, services.settings.max_body_bytes))
    updated = await services.accounts.update_key(key.hash, **changes)
    if updated is None:
        raise NotFound("API key not found")
    # This process sees the change now; others through the cache bus (or within the cache TTL).
    services.authenticator.forget(key.hash)
    return json_response({"data": key_object(updated, await key_spend(services, key.hash))})


async def delete_key(request: Request) -> Response:
    services, _, key = await _managed_key(request)
    await services.accounts.revoke_key(key.hash)
    services.authenticator.forget(key.hash)
    return json_response({"deleted": True})
