"""The Settings page's provider-preferences form: to and from OpenRouter's `provider` object.

Common fields have form controls (sort, allow fallbacks, data collection, ignored providers, order,
max prompt/completion price); any other field of the object goes in an optional JSON box. The
result is validated by the same parser the API uses, so what is saved is what a request accepts.
Only values that differ from the defaults are stored, so a request's own field wins cleanly.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from polyroute.domain.errors import BadRequest
from polyroute.routing.preferences import SORTS, parse_preferences
from polyroute.web.forms import Form

FORM_FIELDS = frozenset({"sort", "allow_fallbacks", "data_collection", "ignore", "order", "max_price"})
PRICE_FIELDS = ("prompt", "completion")  # USD per million tokens; request/image caps go in the JSON box
MAX_EXTRA_CHARS = 8000


class PreferenceError(ValueError):
    """A message for the form (never a 500)."""


@dataclass(frozen=True, slots=True)
class PreferenceForm:
    """The current object, shaped for the template."""

    sort: str = ""
    allow_fallbacks: bool = True
    data_collection: str = "allow"
    ignore: frozenset[str] = frozenset()
    order: str = ""
    max_price: dict[str, str] = field(default_factory=dict)
    extra: str = ""


def for_form(stored: Mapping[str, Any]) -> PreferenceForm:
    sort = stored.get("sort")
    if isinstance(sort, dict):
        sort = sort.get("by")
    found = stored.get("max_price")
    prices: dict[str, Any] = found if isinstance(found, dict) else {}
    extra_prices = {k: v for k, v in prices.items() if k not in PRICE_FIELDS}
    extra = {k: v for k, v in stored.items() if k not in FORM_FIELDS}
    if extra_prices:
        extra["max_price"] = extra_prices
    return PreferenceForm(
        sort=sort if sort in SORTS else "",
        allow_fallbacks=stored.get("allow_fallbacks") is not False,
        data_collection="deny" if stored.get("data_collection") == "deny" else "allow",
        ignore=frozenset(str(s) for s in stored.get("ignore") or ()),
        order=", ".join(str(s) for s in stored.get("order") or ()),
        max_price={k: str(prices[k]) for k in PRICE_FIELDS if prices.get(k) is not None},
        extra=json.dumps(extra, indent=2, sort_keys=True) if extra else "",
    )


def as_typed(form: Form) -> PreferenceForm:
    """What the visitor sent, to show again beside an error."""
    return PreferenceForm(
        sort=form.get("sort", ""),
        allow_fallbacks=form.get("allow_fallbacks") == "1",
        data_collection=form.get("data_collection", "allow"),
        ignore=frozenset(form.getlist("ignore")),
        order=form.get("order", ""),
        max_price={name: form.get(f"max_{name}", "") for name in PRICE_FIELDS},
        extra=form.get("extra", ""),
    )


def _slugs(values: list[str], known: Collection[str], what: str) -> list[str]:
    slugs = [v.strip().lower() for v in values if v.strip()]
    unknown = [s for s in slugs if s not in known]
    if unknown:
        raise PreferenceError(f"{what}: no provider called “{unknown[0]}”.")
    return list(dict.fromkeys(slugs))


def _number(text: str, what: str) -> int | float:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise PreferenceError(f"{what} must be a number of USD per million tokens, like 0.5.") from None
    if not amount.is_finite() or amount < 0:
        raise PreferenceError(f"{what} must be a number of USD per million tokens, like 0.5.")
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _extra(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    if len(text) > MAX_EXTRA_CHARS:
        raise PreferenceError("Other fields: too long.")
    try:
        found = json.loads(text)
    except ValueError:
        raise PreferenceError('Other fields must be a JSON object, like {"quantizations": ["fp8"]}.') from None
    if not isinstance(found, dict):
        raise PreferenceError('Other fields must be a JSON object, like {"quantizations": ["fp8"]}.')
    return found


def from_form(form: Form, providers: Collection[str]) -> dict[str, Any]:
    """The `provider` object to store (only non-default values); raises PreferenceError."""
    result = _extra(form.get("extra", ""))
    extra_prices = result.pop("max_price", None)
    clash = sorted(set(result) & FORM_FIELDS)
    if clash:
        raise PreferenceError(f"Other fields: set “{clash[0]}” with the form above.")
    sort = form.get("sort", "")
    if sort:
        if sort not in SORTS:
            raise PreferenceError("Sort: pick price, throughput or latency.")
        result["sort"] = sort
    if form.get("allow_fallbacks") != "1":
        result["allow_fallbacks"] = False
    data_collection = form.get("data_collection", "allow")
    if data_collection not in ("allow", "deny"):
        raise PreferenceError("Data collection: pick allow or deny.")
    if data_collection == "deny":
        result["data_collection"] = "deny"
    ignore = _slugs(form.getlist("ignore"), providers, "Ignored providers")
    if ignore:
        result["ignore"] = ignore
    order = _slugs(form.get("order", "").split(","), providers, "Order")
    if order:
        result["order"] = order
    prices: dict[str, Any] = dict(extra_prices) if isinstance(extra_prices, dict) else {}
    if extra_prices is not None and not isinstance(extra_prices, dict):
        raise PreferenceError("Other fields: max_price must be an object.")
    for name in PRICE_FIELDS:
        text = form.get(f"max_{name}", "")
        if text.strip():
            prices[name] = _number(text, f"Max {name} price")
    if prices:
        result["max_price"] = prices
    try:
        parse_preferences(result)  # the API's own parser: what is saved, a request accepts
    except BadRequest as error:
        raise PreferenceError(error.message.removeprefix("Invalid request: ")) from None
    return result
