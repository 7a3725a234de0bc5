"""OpenRouter's key shapes: the `KeyObject` of the management API and the `GET /key` document.

Usage figures are settled spend from the key's running totals (in-flight reservations are not
usage); `limit_remaining` is the limit minus the usage of the limit's current period.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from polyroute.accounts.types import ApiKey
from polyroute.billing.ledger_store import KeySpend
from polyroute.domain.money import pusd_to_usd_float


def iso_utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def workspace_id(account_id: int) -> str:
    """A stable UUID per account: polyroute has one workspace per account."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"polyroute:workspace:{account_id}"))


def limit_fields(key: ApiKey, spend: KeySpend) -> dict[str, Any]:
    limit = key.limit_pusd
    remaining = None if limit is None else max(0, limit - spend.usage_toward_limit(key.limit_reset))
    return {
        "limit": None if limit is None else pusd_to_usd_float(limit),
        "limit_remaining": None if remaining is None else pusd_to_usd_float(remaining),
        "limit_reset": key.limit_reset,
        "include_byok_in_limit": False,
    }


def usage_fields(spend: KeySpend) -> dict[str, Any]:
    return {
        "usage": pusd_to_usd_float(spend.spent_pusd),
        "usage_daily": pusd_to_usd_float(spend.daily_pusd),
        "usage_weekly": pusd_to_usd_float(spend.weekly_pusd),
        "usage_monthly": pusd_to_usd_float(spend.monthly_pusd),
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
    }


def rate_limit_fields(key: ApiKey) -> dict[str, Any]:
    """polyroute's extension: the key's own per-minute limits (null = the instance default, 0 = none)."""
    return {"rate_limit": {"requests_per_minute": key.rpm, "tokens_per_minute": key.tpm}}


def key_object(key: ApiKey, spend: KeySpend) -> dict[str, Any]:
    """The management API's KeyObject, plus `rate_limit` (polyroute's extension)."""
    return {
        "hash": key.hash,
        "name": key.name,
        "label": key.label,
        "disabled": key.disabled,
        **limit_fields(key, spend),
        **usage_fields(spend),
        "created_at": iso_utc(key.created_at),
        "updated_at": iso_utc(key.updated_at),
        "expires_at": iso_utc(key.expires_at),
        "creator_user_id": str(key.account_id),
        "workspace_id": workspace_id(key.account_id),
        **rate_limit_fields(key),
    }


def current_key_body(key: ApiKey, spend: KeySpend, *, is_free_tier: bool) -> dict[str, Any]:
    """`GET /key`: the calling key."""
    return {
        "label": key.label,
        "name": key.name,
        **limit_fields(key, spend),
        **usage_fields(spend),
        "is_free_tier": is_free_tier,
        "is_management_key": key.is_management,
        "is_provisioning_key": key.is_management,
        "creator_user_id": str(key.account_id),
        "expires_at": iso_utc(key.expires_at),
        "rate_limit": {"requests": -1, "interval": "10s", "note": "This field is deprecated and safe to ignore."},
    }
