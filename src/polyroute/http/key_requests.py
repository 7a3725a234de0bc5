"""Validating management-API request bodies and query strings (`POST /keys`, `PATCH /keys/{hash}`).

Limits arrive as JSON numbers in USD and become exact pUSD through their decimal text: 0.1 is
100000000000 pUSD, and anything finer than 1 pUSD is refused rather than rounded.

`rate_limit` is polyroute's extension (docs/api.md): `{"requests_per_minute": int|null,
"tokens_per_minute": int|null}`, each optional; null means the instance default, 0 no limit for the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from polyroute.accounts.store import MAX_RATE_PER_MINUTE, KeyChanges, is_rate_limit
from polyroute.billing.periods import LIMIT_RESETS
from polyroute.domain.errors import BadRequest
from polyroute.domain.money import MoneyFormatError, usd_to_pusd


@dataclass(frozen=True, slots=True)
class NewKey:
    name: str
    limit_pusd: int | None = None
    limit_reset: str | None = None
    expires_at: datetime | None = None
    rpm: int | None = None
    tpm: int | None = None


_RATE_FIELDS = {"requests_per_minute": "rpm", "tokens_per_minute": "tpm"}


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("Invalid request: the body must be a JSON object")
    return body


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("Invalid request: `name` must be a non-empty string")
    return value.strip()


def _limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest("Invalid request: `limit` must be a number of USD or null")
    try:
        return usd_to_pusd(Decimal(repr(value)) if isinstance(value, float) else value)
    except MoneyFormatError as error:
        raise BadRequest(f"Invalid request: `limit`: {error}") from None


def _limit_reset(value: Any) -> str | None:
    if value is not None and value not in LIMIT_RESETS:
        raise BadRequest(f"Invalid request: `limit_reset` must be one of {', '.join(LIMIT_RESETS)} or null")
    return value  # type: ignore[no-any-return]


def _expires_at(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("Invalid request: `expires_at` must be an ISO 8601 UTC date-time or null")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest("Invalid request: `expires_at` must be an ISO 8601 UTC date-time or null") from None
    if moment.utcoffset() != timedelta(0):
        raise BadRequest("Invalid request: `expires_at` must be in UTC (end it with Z or +00:00)")
    moment = moment.astimezone(UTC)
    if moment <= datetime.now(UTC):
        raise BadRequest("Invalid request: `expires_at` must be in the future")
    return moment


def _rate_limit(value: Any) -> dict[str, int | None]:
    """The present fields of a `rate_limit` object as {"rpm"/"tpm": value}; absent fields are left out."""
    if not isinstance(value, dict):
        raise BadRequest("Invalid request: `rate_limit` must be an object with requests_per_minute, tokens_per_minute")
    unknown = sorted(set(value) - set(_RATE_FIELDS))
    if unknown:
        raise BadRequest(f"Invalid request: `rate_limit` has unknown field(s): {', '.join(unknown)}")
    rates: dict[str, int | None] = {}
    for name, field in _RATE_FIELDS.items():
        if name not in value:
            continue
        rate = value[name]
        if rate is not None and not is_rate_limit(rate):
            raise BadRequest(
                f"Invalid request: `rate_limit.{name}` must be an integer from 0 to {MAX_RATE_PER_MINUTE} or null"
            )
        rates[field] = rate
    return rates


def _flag(body: dict[str, Any], name: str) -> None:
    if name in body and not isinstance(body[name], bool):
        raise BadRequest(f"Invalid request: `{name}` must be a boolean")


def parse_new_key(raw: Any) -> NewKey:
    body = _object(raw)
    _flag(body, "include_byok_in_limit")  # accepted; polyroute has no BYOK spend to include
    rates = _rate_limit(body["rate_limit"]) if body.get("rate_limit") is not None else {}
    return NewKey(
        name=_name(body.get("name")),
        limit_pusd=_limit(body.get("limit")),
        limit_reset=_limit_reset(body.get("limit_reset")),
        expires_at=_expires_at(body.get("expires_at")),
        rpm=rates.get("rpm"),
        tpm=rates.get("tpm"),
    )


def parse_key_changes(raw: Any) -> KeyChanges:
    """Only the fields present change; `limit: null` removes the limit, `rate_limit: null` resets both rates."""
    body = _object(raw)
    _flag(body, "include_byok_in_limit")
    _flag(body, "disabled")
    changes: KeyChanges = {}
    if "name" in body:
        changes["name"] = _name(body["name"])
    if "disabled" in body:
        changes["disabled"] = body["disabled"]
    if "limit" in body:
        changes["limit_pusd"] = _limit(body["limit"])
    if "limit_reset" in body:
        changes["limit_reset"] = _limit_reset(body["limit_reset"])
    if "rate_limit" in body:
        rates = {"rpm": None, "tpm": None} if body["rate_limit"] is None else _rate_limit(body["rate_limit"])
        if "rpm" in rates:
            changes["rpm"] = rates["rpm"]
        if "tpm" in rates:
            changes["tpm"] = rates["tpm"]
    return changes


def parse_list_query(query: Mapping[str, str]) -> tuple[bool, int]:
    """(include_disabled, offset) from `GET /keys`' query string."""
    flag = (query.get("include_disabled") or "false").lower()
    if flag not in ("true", "false"):
        raise BadRequest("Invalid request: `include_disabled` must be true or false")
    raw_offset = query.get("offset") or "0"
    if not raw_offset.isdigit():
        raise BadRequest("Invalid request: `offset` must be a non-negative integer")
    return flag == "true", int(raw_offset)
