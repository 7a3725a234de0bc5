"""The request's `provider` object (OpenRouter's ProviderPreferences), validated into plain values.

Prices in `max_price` are USD per million tokens (prompt, completion) or per request / image, kept
as integer pUSD per unit like the catalog's prices. Latency is in seconds, throughput in tokens/s;
a bare number applies to p50, an object gives per-percentile cutoffs (all must be met).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from polyroute.domain.errors import BadRequest

SORTS = ("price", "throughput", "latency")
_PERCENTILES = ("p50", "p75", "p90", "p99")
_KNOWN = frozenset(
    {
        "order",
        "allow_fallbacks",
        "only",
        "ignore",
        "sort",
        "max_price",
        "require_parameters",
        "data_collection",
        "quantizations",
        "preferred_min_throughput",
        "preferred_max_latency",
        "zdr",
        "enforce_distillable_text",
        "experimental",
    }
)


@dataclass(frozen=True, slots=True)
class MaxPrice:
    """Integer pUSD per token (prompt, completion), per request, per image; None = no cap."""

    prompt: int | None = None
    completion: int | None = None
    request: int | None = None
    image: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderPreferences:
    order: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    sort: str | None = None  # one of SORTS
    max_price: MaxPrice = field(default_factory=MaxPrice)
    require_parameters: bool = False
    data_collection: str = "allow"
    quantizations: tuple[str, ...] = ()
    min_throughput_tps: Mapping[str, float] = field(default_factory=dict)  # percentile -> cutoff
    max_latency_s: Mapping[str, float] = field(default_factory=dict)  # percentile -> cutoff


DEFAULT_PREFERENCES = ProviderPreferences()


def _names(raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = raw.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest(f"Invalid request: `provider.{name}` must be a list of strings")
    return tuple(item.strip().lower() for item in value)


def _flag(raw: Mapping[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid request: `provider.{name}` must be a boolean")
    return value


def _sort(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("by")
    if value is None:
        return None
    if value not in SORTS:
        raise BadRequest("Invalid request: `provider.sort` must be price, throughput or latency")
    return str(value)


def _price(value: Any, name: str, per_token: bool) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRequest(f"Invalid request: `provider.max_price.{name}` must be a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise BadRequest(f"Invalid request: `provider.max_price.{name}` must be a number") from None
    if not amount.is_finite() or amount < 0:
        raise BadRequest(f"Invalid request: `provider.max_price.{name}` must be a non-negative number")
    # USD per million tokens -> pUSD per token is x 10**6; USD -> pUSD is x 10**12. Sub-pUSD
    # precision rounds down: a cap never admits a price above it.
    return int(amount * (10**6 if per_token else 10**12))


def _max_price(value: Any) -> MaxPrice:
    if value is None:
        return MaxPrice()
    if not isinstance(value, dict):
        raise BadRequest("Invalid request: `provider.max_price` must be an object")
    return MaxPrice(
        prompt=_price(value.get("prompt"), "prompt", True),
        completion=_price(value.get("completion"), "completion", True),
        request=_price(value.get("request"), "request", False),
        image=_price(value.get("image"), "image", False),
    )


def _cutoffs(value: Any, name: str) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"p50": float(value)}
    if isinstance(value, dict):
        cutoffs: dict[str, float] = {}
        for key, cutoff in value.items():
            if key not in _PERCENTILES or isinstance(cutoff, bool) or not isinstance(cutoff, (int, float, type(None))):
                raise BadRequest(f"Invalid request: `provider.{name}` takes a number or p50/p75/p90/p99 numbers")
            if cutoff is not None:
                cutoffs[key] = float(cutoff)
        return cutoffs
    raise BadRequest(f"Invalid request: `provider.{name}` takes a number or p50/p75/p90/p99 numbers")


def parse_preferences(raw: Mapping[str, Any] | None) -> ProviderPreferences:
    """Raises BadRequest naming the offending field."""
    if not raw:
        return DEFAULT_PREFERENCES
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise BadRequest(f"Invalid request: `provider.{unknown[0]}` is not a provider preference")
    data_collection = raw.get("data_collection") or "allow"
    if data_collection not in ("allow", "deny"):
        raise BadRequest("Invalid request: `provider.data_collection` must be allow or deny")
    if raw.get("zdr") is True:
        data_collection = "deny"  # our catalog knows retention only as the provider's data policy
    return ProviderPreferences(
        order=_names(raw, "order"),
        allow_fallbacks=_flag(raw, "allow_fallbacks", True),
        only=_names(raw, "only"),
        ignore=_names(raw, "ignore"),
        sort=_sort(raw.get("sort")),
        max_price=_max_price(raw.get("max_price")),
        require_parameters=_flag(raw, "require_parameters", False),
        data_collection=str(data_collection),
        quantizations=_names(raw, "quantizations"),
        min_throughput_tps=_cutoffs(raw.get("preferred_min_throughput"), "preferred_min_throughput"),
        max_latency_s=_cutoffs(raw.get("preferred_max_latency"), "preferred_max_latency"),
    )
