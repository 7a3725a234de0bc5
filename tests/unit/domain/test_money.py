"""Integer money: exact conversions, and refusal of anything finer than one picodollar."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute.domain.money import (
    MoneyFormatError,
    per_million_to_pusd_per_token,
    per_token_to_pusd,
    pusd_to_usd_string,
    usd_to_pusd,
)


def test_cheapest_listed_price_charges_a_whole_nonzero_amount_per_token():
    assert per_token_to_pusd("0.000000001") == 1_000  # $0.001 per million tokens
    assert per_token_to_pusd(Decimal("3.36e-9")) == 3_360


def test_price_per_million_becomes_pusd_per_token():
    assert per_million_to_pusd_per_token("0.50") == 500_000
    assert per_million_to_pusd_per_token("1.50") == 1_500_000
    assert per_million_to_pusd_per_token(3) == 3_000_000


@pytest.mark.parametrize("bad", ["-1", "abc", "NaN", "Infinity", "0.0000001"])
def test_bad_or_too_fine_prices_are_refused(bad):
    with pytest.raises(MoneyFormatError):
        per_million_to_pusd_per_token(bad)


def test_usd_strings_have_no_exponent_or_trailing_zeros():
    assert pusd_to_usd_string(500_000) == "0.0000005"
    assert pusd_to_usd_string(0) == "0"
    assert pusd_to_usd_string(12 * 10**12) == "12"
    assert usd_to_pusd("12.5") == 12_500_000_000_000


@given(st.integers(min_value=0, max_value=10**18))
def test_usd_string_round_trips_exactly(amount):
    assert usd_to_pusd(pusd_to_usd_string(amount)) == amount
