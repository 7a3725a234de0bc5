"""Pricing is integer arithmetic: tokens x pUSD-per-token, with cache and reasoning prices."""

from hypothesis import given
from hypothesis import strategies as st

from polyroute.billing.pricing import cost_of
from polyroute.catalog.types import Pricing
from polyroute.domain.chat import Usage


def test_plain_prompt_and_completion_cost():
    cost = cost_of(Usage(prompt_tokens=10, completion_tokens=20), Pricing(prompt=500_000, completion=1_500_000))
    assert (cost.prompt_pusd, cost.completion_pusd, cost.total_pusd) == (5_000_000, 30_000_000, 35_000_000)


def test_cached_tokens_use_cache_read_price_and_writes_the_write_price():
    pricing = Pricing(prompt=1000, completion=0, input_cache_read=100, input_cache_write=1250)
    cost = cost_of(Usage(prompt_tokens=100, cached_tokens=60, cache_write_tokens=30), pricing)
    assert cost.prompt_pusd == 10 * 1000 + 60 * 100 + 30 * 1250


def test_reasoning_tokens_use_reasoning_price_when_set():
    pricing = Pricing(prompt=0, completion=10, internal_reasoning=7)
    assert cost_of(Usage(completion_tokens=5, reasoning_tokens=2), pricing).completion_pusd == 3 * 10 + 2 * 7


@given(
    st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7),
    st.integers(0, 10**7), st.integers(0, 10**7),
)
def test_cost_is_an_exact_nonnegative_integer(prompt, completion, cached, written, p_price, c_price):
    usage = Usage(prompt, completion, cached_tokens=cached, cache_write_tokens=written)
    cost = cost_of(usage, Pricing(prompt=p_price, completion=c_price))
    assert isinstance(cost.total_pusd, int) and cost.total_pusd >= 0
    assert cost.total_pusd == prompt * p_price + completion * c_price
