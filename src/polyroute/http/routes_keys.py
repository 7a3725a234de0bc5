"""GET /key (and legacy GET /auth/key): the calling key's limits and usage."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from polyroute.domain.money import pusd_to_usd_float
from polyroute.http.responses import json_response
from polyroute.http.services import Services
from polyroute.usage_log.queries import key_usage


async def current_key(request: Request) -> Response:
    services: Services = request.app.state.services
    key = await services.authenticator.authenticate(request.headers.get("authorization"))
    usage = await key_usage(services.engine, key.hash)
    limit = key.limit_pusd
    period_usage = {
        "daily": usage.daily_pusd,
        "weekly": usage.weekly_pusd,
        "monthly": usage.monthly_pusd,
    }.get(key.limit_reset or "", usage.total_pusd)
    data = {
        "label": key.label,
        "name": key.name,
        "limit": None if limit is None else pusd_to_usd_float(limit),
        "limit_remaining": None if limit is None else pusd_to_usd_float(max(0, limit - period_usage)),
        "limit_reset": key.limit_reset,
        "include_byok_in_limit": False,
        "usage": pusd_to_usd_float(usage.total_pusd),
        "usage_daily": pusd_to_usd_float(usage.daily_pusd),
        "usage_weekly": pusd_to_usd_float(usage.weekly_pusd),
        "usage_monthly": pusd_to_usd_float(usage.monthly_pusd),
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "is_free_tier": False,
        "is_management_key": key.is_management,
        "is_provisioning_key": key.is_management,
        "creator_user_id": str(key.account_id),
        "expires_at": key.expires_at.isoformat().replace("+00:00", "Z") if key.expires_at else None,
        "rate_limit": {"requests": -1, "interval": "10s", "note": "This field is deprecated and safe to ignore."},
    }
    return json_response({"data": data})
