"""Pure pricing: token usage x endpoint prices -> integer cost in pUSD. No rounding is needed
because prices are whole pUSD per token (see polyroute.domain.money)."""

from __future__ import annotations

from dataclasses import dataclass

from polyroute.catalog.types import Pricing
from polyroute.domain.chat import Usage


@dataclass(frozen=True, slots=True)
class Cost:
    prompt_pusd: int
    completion_pusd: int
    request_pusd: int = 0

    @property
    def total_pusd(self) -> int:
        return self.prompt_pusd + self.completion_pusd + self.request_pusd


def cost_of(usage: Usage, pricing: Pricing) -> Cost:
    """Cached prompt tokens are billed at the cache-read price where the endpoint has one;
    cache writes at the cache-write price; reasoning tokens at the reasoning price if set."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
    fresh = usage.prompt_tokens - cached - written
    read_price = pricing.prompt if pricing.input_cache_read is None else pricing.input_cache_read
    write_price = pricing.prompt if pricing.input_cache_write is None else pricing.input_cache_write
    prompt = fresh * pricing.prompt + cached * read_price + written * write_price

    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    if pricing.internal_reasoning is None:
        completion = usage.completion_tokens * pricing.completion
    else:
        completion = (usage.completion_tokens - reasoning) * pricing.completion
        completion += reasoning * pricing.internal_reasoning
    return Cost(prompt_pusd=prompt, completion_pusd=completion, request_pusd=pricing.request)


NO_CHARGE = Cost(0, 0, 0)


def is_insured(usage: Usage, finish_reason: str | None) -> bool:
    """OpenRouter's zero-completion insurance: no output tokens and a blank or error finish reason."""
    return usage.completion_tokens == 0 and finish_reason in (None, "", "error")


def charge_for(usage: Usage, pricing: Pricing, finish_reason: str | None) -> Cost:
    """What the client pays for one served attempt: its cost, or nothing when insured."""
    if is_insured(usage, finish_reason):
        return NO_CHARGE
    return cost_of(usage, pricing)
