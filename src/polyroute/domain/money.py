"""Integer money: every amount is a whole number of picodollars (1 USD = 10**12 pUSD).

Why pico: the cheapest listed price is $0.001 per million tokens (1e-9 USD a token) and
real prices such as $3.36 per billion tokens need three more digits, so one token of any
listed model costs a whole, non-zero number of pUSD and `tokens * price` needs no rounding.
A signed 64-bit column holds about 9.2 million USD, far above any one balance we expect.
Floats appear only at the wire edge, in `pusd_to_usd_float`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

PUSD_PER_USD = 10**12
TOKENS_PER_MILLION = 10**6


class MoneyFormatError(ValueError):
    """A decimal amount that is malformed, negative, or finer than one pUSD."""


def _decimal(text: str | int | Decimal) -> Decimal:
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise MoneyFormatError(f"not a decimal number: {text!r}") from exc
    if not value.is_finite():
        raise MoneyFormatError(f"not a finite number: {text!r}")
    if value < 0:
        raise MoneyFormatError(f"negative amount: {text!r}")
    return value


def _exact_int(value: Decimal, original: object, unit: str) -> int:
    if value != value.to_integral_value():
        raise MoneyFormatError(f"{original!r} is finer than 1 pUSD {unit}")
    return int(value)


def usd_to_pusd(amount_usd: str | int | Decimal) -> int:
    """An exact USD amount ("12.50") as pUSD; rejects anything finer than 1 pUSD."""
    return _exact_int(_decimal(amount_usd) * PUSD_PER_USD, amount_usd, "")


def per_million_to_pusd_per_token(price_usd_per_million: str | int | Decimal) -> int:
    """A price in USD per million tokens ("0.50") as pUSD per token (500000)."""
    value = _decimal(price_usd_per_million) * PUSD_PER_USD / TOKENS_PER_MILLION
    return _exact_int(value, price_usd_per_million, "per token")


def per_token_to_pusd(price_usd_per_token: str | int | Decimal) -> int:
    """A price in USD per token ("0.0000005") as pUSD per token."""
    return _exact_int(_decimal(price_usd_per_token) * PUSD_PER_USD, price_usd_per_token, "per token")


def pusd_to_usd_string(amount_pusd: int) -> str:
    """pUSD as a plain decimal USD string without exponent or trailing zeros ("0.0000005")."""
    if amount_pusd == 0:
        return "0"
    text = format(Decimal(amount_pusd) / PUSD_PER_USD, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def pusd_to_usd_float(amount_pusd: int) -> float:
    """pUSD as a JSON number in USD: only for wire output, never for arithmetic."""
    return amount_pusd / PUSD_PER_USD
