"""Reservation rules: the worst case bounds every possible charge, and fitting never exceeds the budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from polyroute.billing.pricing import charge_for, cost_of, is_insured
from polyroute.billing.reservation import (
    EndpointTerms,
    Refusal,
    Reservation,
    affordable_tokens,
    endpoint_terms,
    fit_reservation,
    refusal_message,
    worst_case,
)
from polyroute.billing.token_estimate import estimate_prompt_tokens, prompt_token_bound
from polyroute.catalog.types import EndpointSpec, Pricing
from polyroute.domain.chat import Usage

CHEAP = Pricing(prompt=500_000, completion=1_500_000)  # $0.50 / $1.50 per million tokens
PRICEY = Pricing(prompt=3_000_000, completion=15_000_000, request=1_000, input_cache_write=3_750_000)

prices = st.integers(0, 10**9)
optional_prices = st.none() | prices
pricings = st.builds(
    Pricing,
    prompt=prices,
    completion=prices,
    request=st.integers(0, 10**10),
    input_cache_read=optional_prices,
    input_cache_write=optional_prices,
    internal_reasoning=optional_prices,
)
terms = st.builds(EndpointTerms, pricing=pricings, max_completion_tokens=st.integers(1, 200_000))
plans = st.lists(terms, min_size=1, max_size=4)


def test_worst_case_is_prompt_plus_max_completion_at_the_highest_prices():
    plan = [EndpointTerms(PRICEY, 8_192)]
    assert worst_case(plan, 100, 50) == 100 * 3_750_000 + 50 * 15_000_000 + 1_000
    assert worst_case(plan, 100, None) == 100 * 3_750_000 + 8_192 * 15_000_000 + 1_000


def test_a_fallback_plan_reserves_its_most_expensive_attempt():
    plan = [EndpointTerms(CHEAP, 4_096), EndpointTerms(PRICEY, 1_024)]
    assert worst_case(plan, 10, 2_000) == max(
        10 * 500_000 + 2_000 * 1_500_000, 10 * 3_750_000 + 1_024 * 15_000_000 + 1_000
    )


def test_endpoint_without_output_maximum_may_fill_its_context():
    endpoint = EndpointSpec("a/m", "p", "m", CHEAP, context_length=8_192)
    assert endpoint_terms(endpoint, 1_000).max_completion_tokens == 7_192
    assert endpoint_terms(endpoint, 9_000).max_completion_tokens == 1


def test_explicit_max_tokens_over_budget_is_refused_with_what_would_fit():
    plan = [EndpointTerms(CHEAP, 4_096)]
    budget = 10 * 500_000 + 42 * 1_500_000 + 1_000_000  # 42 tokens and change
    assert fit_reservation(plan, 10, 1_000, budget) == Refusal(requested_tokens=1_000, affordable_tokens=42)


def test_missing_max_tokens_is_capped_to_what_the_budget_affords():
    plan = [EndpointTerms(CHEAP, 4_096)]
    budget = 10 * 500_000 + 42 * 1_500_000 + 1_000_000
    assert fit_reservation(plan, 10, None, budget) == Reservation(10 * 500_000 + 42 * 1_500_000, 42)


def test_a_budget_short_of_the_prompt_is_refused_with_zero_tokens():
    plan = [EndpointTerms(CHEAP, 4_096)]
    assert fit_reservation(plan, 10, None, 10 * 500_000 - 1) == Refusal(4_096, 0)
    assert affordable_tokens(plan, 10, 10 * 500_000 - 1) == -1


def test_refusal_messages_follow_openrouter():
    message = refusal_message(Refusal(65_536, 3_395), source="account")
    assert message.startswith("This request requires more credits, or fewer max_tokens. You requested up to 65536")
    assert "can only afford 3395" in message
    assert "higher monthly limit" in refusal_message(Refusal(10, 3), source="key", period="monthly")
    assert refusal_message(Refusal(10, 0), source="account").startswith("Insufficient credits")


@given(plans, st.integers(0, 100_000), st.none() | st.integers(1, 300_000), st.integers(0, 10**16))
def test_a_fitted_reservation_never_exceeds_the_budget_and_covers_its_cap(plan, prompt, max_tokens, budget):
    fitted = fit_reservation(plan, prompt, max_tokens, budget)
    if isinstance(fitted, Reservation):
        assert 0 <= fitted.amount_pusd <= budget
        assert fitted.amount_pusd == worst_case(plan, prompt, fitted.max_tokens or max_tokens)
        if fitted.max_tokens is not None:
            assert max_tokens is None and fitted.max_tokens >= 1
            # the cap is the largest that fits: one more token would not (unless the output maximum stops it)
            assert worst_case(plan, prompt, fitted.max_tokens + 1) > budget or all(
                t.max_completion_tokens <= fitted.max_tokens for t in plan
            )
    else:
        assert worst_case(plan, prompt, max_tokens) > budget
        assert fitted.affordable_tokens == 0 or worst_case(plan, prompt, fitted.affordable_tokens) <= budget


@given(
    terms,
    st.integers(0, 50_000),
    st.integers(0, 50_000),
    st.integers(0, 50_000),
    st.integers(0, 50_000),
    st.integers(0, 50_000),
)
def test_every_charge_within_the_reserved_tokens_is_covered(endpoint, prompt, completion, cached, written, reasoning):
    """Whatever mix of cached, cache-written and reasoning tokens comes back, the charge fits the hold."""
    completion = min(completion, endpoint.max_completion_tokens)
    usage = Usage(prompt, completion, cached_tokens=cached, cache_write_tokens=written, reasoning_tokens=reasoning)
    assert cost_of(usage, endpoint.pricing).total_pusd <= worst_case([endpoint], prompt, completion)


def test_zero_completion_insurance():
    assert is_insured(Usage(prompt_tokens=50), None)
    assert is_insured(Usage(prompt_tokens=50), "error")
    assert not is_insured(Usage(prompt_tokens=50), "stop")  # an empty answer that did finish is charged
    assert not is_insured(Usage(prompt_tokens=50, completion_tokens=1), "error")  # partial output is charged
    assert charge_for(Usage(prompt_tokens=50), CHEAP, None).total_pusd == 0
    assert (
        charge_for(Usage(prompt_tokens=50, completion_tokens=2), CHEAP, "error").total_pusd
        == 50 * 500_000 + 2 * 1_500_000
    )


text = st.text(max_size=400)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "user", "assistant"]),
            "content": text | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text}), max_size=3),
        }
    ),
    min_size=1,
    max_size=6,
)


@given(messages)
def test_the_prompt_bound_is_never_below_the_estimate_we_charge_from(msgs):
    assert prompt_token_bound(msgs) >= estimate_prompt_tokens(msgs)


def test_the_prompt_bound_counts_tools_and_media():
    plain = [{"role": "user", "content": "hi"}]
    with_image = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {}}]}]
    tools = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    assert prompt_token_bound(with_image) >= prompt_token_bound(plain) + 2_000
    assert prompt_token_bound(plain, tools) > prompt_token_bound(plain)
