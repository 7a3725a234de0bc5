"""Accounting reads in OpenRouter's shapes: `GET /credits`, `GET /generation?id=`, `GET /activity`.

`/credits` and `/generation` answer any key of the account (OpenRouter's 2026 spec asks a
management key for `/credits`; its older clients call it with an inference key, so both work);
`/activity` needs a management key. Nothing of another account is ever visible.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from polyroute.billing import ledger_store
from polyroute.billing.periods import utc_today
from polyroute.domain.errors import BadRequest, NotFound
from polyroute.domain.money import pusd_to_usd_float
from polyroute.http.key_views import iso_utc
from polyroute.http.responses import json_response
from polyroute.http.routes_keys import authenticate, authenticate_management, services_of
from polyroute.http.services import Services
from polyroute.usage_log.queries import daily_activity

ACTIVITY_DAYS = 30


async def credits(request: Request) -> Response:
    services = services_of(request)
    key = await authenticate(request)
    async with services.engine.connect() as conn:
        balance = await ledger_store.read_balance(conn, key.account_id)
    total_credits, total_usage = (0, 0) if balance is None else (balance.credits_pusd, balance.spent_pusd)
    body = {"total_credits": pusd_to_usd_float(total_credits), "total_usage": pusd_to_usd_float(total_usage)}
    return json_response({"data": body})


def _provider_name(services: Services, slug: str) -> str:
    try:
        return services.catalog.provider(slug).display_name
    except (KeyError, LookupError):
        return slug


async def generation(request: Request) -> Response:
    services = services_of(request)
    key = await authenticate(request)
    generation_id = request.query_params.get("id") or ""
    if not generation_id:
        raise BadRequest("Invalid request: the `id` query parameter is required")
    row = await services.generations.get(generation_id)
    if row is None or row["account_id"] != key.account_id:
        raise NotFound(f"Generation {generation_id} not found")
    return json_response({"data": generation_body(row, _provider_name(services, row["provider"]))})


def generation_body(row: dict[str, Any], provider_name: str) -> dict[str, Any]:
    cost = pusd_to_usd_float(row["cost_pusd"])
    latency, ttft = row["latency_ms"], row["ttft_ms"]
    return {
        "id": row["id"],
        "request_id": row["id"],
        "upstream_id": None,
        "created_at": iso_utc(row["created_at"]),
        "model": row["model"],
        "provider_name": provider_name,
        "router": None,
        "api_type": "completions",
        "streamed": row["streamed"],
        "cancelled": row["status"] == "cancelled",
        "latency": latency,
        "generation_time": None if latency is None else latency - (ttft or 0),
        "moderation_latency": None,
        "tokens_prompt": row["prompt_tokens"],
        "tokens_completion": row["completion_tokens"],
        "native_tokens_prompt": row["prompt_tokens"],
        "native_tokens_completion": row["completion_tokens"],
        "native_tokens_reasoning": row["reasoning_tokens"],
        "native_tokens_cached": row["cached_tokens"],
        "native_tokens_completion_images": 0,
        "num_media_prompt": None,
        "num_media_completion": None,
        "num_input_audio_prompt": None,
        "num_search_results": None,
        "num_fetches": None,
        "web_search_engine": None,
        "total_cost": cost,
        "usage": cost,
        "upstream_inference_cost": None,
        "cache_discount": None,
        "is_byok": False,
        "finish_reason": row["finish_reason"],
        "native_finish_reason": row["native_finish_reason"],
        "origin": row["http_referer"] or "",
        "http_referer": row["http_referer"],
        "app_id": None,
        "external_user": None,
        "user_agent": None,
        "preset_id": None,
        "session_id": None,
        "service_tier": None,
        "data_region": "global",
        "workspace_id": None,
        "provider_responses": None,
        "response_cache_source_id": None,
        # polyroute's own fields: how the request ended and the app that sent it
        "status": row["status"],
        "app_title": row["app_title"],
        "time_to_first_token": ttft,
    }


def _activity_days(query: Any) -> tuple[date, date]:
    """The 30 completed UTC days before today; `date=` picks one of them (or today, which is partial)."""
    today = utc_today()
    first = today - timedelta(days=ACTIVITY_DAYS)
    wanted = query.get("date")
    if not wanted:
        return first, today - timedelta(days=1)
    try:
        day = date.fromisoformat(wanted)
    except ValueError:
        raise BadRequest("Invalid request: `date` must be YYYY-MM-DD") from None
    if not first <= day <= today:
        raise BadRequest(f"Invalid request: `date` must be within the last {ACTIVITY_DAYS} days")
    return day, day


def endpoint_id(provider: str, model: str) -> str:
    """A stable UUID for one provider serving one model (OpenRouter's endpoint ids are UUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"polyroute:endpoint:{provider}:{model}"))


async def activity(request: Request) -> Response:
    services = services_of(request)
    key = await authenticate_management(request)
    first, last = _activity_days(request.query_params)
    key_hash = request.query_params.get("api_key_hash") or None
    rows = await daily_activity(services.engine, key.account_id, first, last, key_hash)
    catalog_models = services.catalog.models
    data = [
        {
            "date": row.day.isoformat(),
            "model": row.model,
            "model_permaslug": catalog_models[row.model].canonical_slug if row.model in catalog_models else row.model,
            "endpoint_id": endpoint_id(row.provider, row.model),
            "provider_name": _provider_name(services, row.provider),
            "usage": pusd_to_usd_float(row.usage_pusd),
            "byok_usage_inference": 0.0,
            "requests": row.requests,
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "reasoning_tokens": row.reasoning_tokens,
        }
        for row in rows
    ]
    return json_response({"data": data})
