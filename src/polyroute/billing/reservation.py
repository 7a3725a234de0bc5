"""Pure reservation rules: the worst case a request can cost, and what to do when it is not affordable.

All amounts are integer pUSD. The one rounding rule of billing lives here: the number of completion
tokens a budget affords is rounded *down* (`//`), so a reservation never exceeds the budget it was
fitted to. Prices are whole pUSD per token, so costs themselves need no rounding (see
`polyroute.domain.money` and docs/billing.md).

A reservation is an upper bound of the charge when the prompt estimate is (see
`billing.token_estimate.prompt_token_bound`): every prompt token is priced at most at the endpoint's
highest input price (prompt, cache read, cache write), every completion token at most at its highest
output price (completion, internal reasoning), plus the per-request fee. Over the attempts of a
fallback plan the reservation is the largest such bound, because any one of them may serve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from polyroute.catalog.types import EndpointSpec, Pricing


@dataclass(frozen=True, slots=True)
class EndpointTerms:
    """What one planned attempt can cost: its prices and the most it can generate for this request."""

    pricing: Pricing
    max_completion_tokens: int


@dataclass(frozen=True, slots=True)
class Reservation:
    amount_pusd: int
    max_tokens: int | None  # the completion cap to send upstream; None = leave the request as sent


@dataclass(frozen=True, slots=True)
class Refusal:
    requested_tokens: int  # the completion tokens the request asked for (or the endpoint's maximum)
    affordable_tokens: int  # the most the budget covers (0 = not even the prompt)


def endpoint_terms(endpoint: EndpointSpec, prompt_tokens: int) -> EndpointTerms:
    """An endpoint without a published output maximum may fill its context window."""
    cap = endpoint.max_completion_tokens or endpoint.context_length - prompt_tokens
    return EndpointTerms(endpoint.pricing, max(1, cap))


def input_price_bound(pricing: Pricing) -> int:
    return max(pricing.prompt, pricing.input_cache_read or 0, pricing.input_cache_write or 0)


def output_price_bound(pricing: Pricing) -> int:
    return max(pricing.completion, pricing.internal_reasoning or 0)


def cost_bound(terms: EndpointTerms, prompt_tokens: int, completion_tokens: int) -> int:
    """The most `prompt_tokens` in and `completion_tokens` out can cost at this endpoint."""
    pricing = terms.pricing
    return (
        prompt_tokens * input_price_bound(pricing) + completion_tokens * output_price_bound(pricing) + pricing.request
    )


def completion_limit(terms: EndpointTerms, max_tokens: int | None) -> int:
    return terms.max_completion_tokens if max_tokens is None else min(max_tokens, terms.max_completion_tokens)


def worst_case(plan: Sequence[EndpointTerms], prompt_tokens: int, max_tokens: int | None) -> int:
    """The reservation that covers whichever attempt of the plan ends up serving."""
    return max((cost_bound(t, prompt_tokens, completion_limit(t, max_tokens)) for t in plan), default=0)


def requested_tokens(plan: Sequence[EndpointTerms], max_tokens: int | None) -> int:
    return max((completion_limit(t, max_tokens) for t in plan), default=0)


def affordable_tokens(plan: Sequence[EndpointTerms], prompt_tokens: int, budget_pusd: int) -> int | None:
    """The largest completion cap whose worst case fits `budget_pusd`; None when any cap fits.

    -1 when the budget does not cover the prompt (and fees) of some attempt."""
    cap: int | None = None
    for terms in plan:
        rest = budget_pusd - cost_bound(terms, prompt_tokens, 0)
        if rest < 0:
            return -1
        price = output_price_bound(terms.pricing)
        if price == 0:
            continue
        fits = rest // price  # round down: the reservation never exceeds the budget
        if fits < terms.max_completion_tokens:
            cap = fits if cap is None else min(cap, fits)
    return cap


def fit_reservation(
    plan: Sequence[EndpointTerms], prompt_tokens: int, max_tokens: int | None, budget_pusd: int
) -> Reservation | Refusal:
    """Reserve the worst case if the budget covers it.

    Otherwise: a request that set `max_tokens` is refused (the client chose that bound, so we say
    how many tokens would fit, as OpenRouter does); a request that did not is capped to the largest
    completion the budget affords, which the relay sends upstream as `max_tokens`, so the reservation
    stays a true bound. Not even one affordable token is a refusal.
    """
    full = worst_case(plan, prompt_tokens, max_tokens)
    if full <= budget_pusd:
        return Reservation(full, None)
    cap = affordable_tokens(plan, prompt_tokens, budget_pusd)
    affordable = 0 if cap is None else max(0, cap)  # None cannot happen when the full case failed
    if max_tokens is not None or affordable < 1:
        return Refusal(requested_tokens(plan, max_tokens), affordable)
    return Reservation(worst_case(plan, prompt_tokens, affordable), affordable)


def refusal_message(refusal: Refusal, *, source: str, period: str | None = None) -> str:
    """OpenRouter's 402 wording; `source` is "account" or "key" (with the key limit's `period`)."""
    if refusal.affordable_tokens >= 1:
        remedy = (
            "add credits to this account"
            if source == "account"
            else f"use a key with a higher {period or 'total'} limit"
        )
        return (
            "This request requires more credits, or fewer max_tokens. "
            f"You requested up to {refusal.requested_tokens} tokens, but can only afford "
            f"{refusal.affordable_tokens}. To increase, {remedy}."
        )
    if source == "account":
        return "Insufficient credits: this account's balance cannot cover this request. Add more credits."
    return f"Key limit exceeded: the rest of this key's {period or 'total'} limit cannot cover this request."


NEGATIVE_BALANCE_MESSAGE = (
    "Insufficient credits: this account's balance is negative. Add credits to bring it above zero."
)
