"""Money in integer minor units: currency exponents, rounding, allocation and fees.

Pure functions over Python ints; nothing here ever touches a float.
"""
from __future__ import annotations

from collections.abc import Sequence

# Stripe's zero- and three-decimal currencies (STRIPE.md); everything else has two.
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

# Stripe's minimum charge per currency, in minor units. Stripe documents usd/eur 50,
# gbp 30, jpy 50; the others are the documented amounts or about 0.50 USD.
MINIMUM_CHARGE = {
    "usd": 50, "eur": 50, "gbp": 30, "jpy": 50, "aud": 50, "cad": 50, "chf": 50,
    "nzd": 50, "sgd": 50, "brl": 50, "inr": 50, "dkk": 250, "nok": 300, "sek": 300,
    "pln": 200, "czk": 1500, "huf": 17500, "hkd": 400, "mxn": 1000, "krw": 700,
    "kwd": 200, "bhd": 200, "jod": 400, "omr": 200, "tnd": 2000,
}
_DEFAULT_MINIMUM = {0: 50, 2: 50, 3: 500}
# Stripe's largest charge: eight digits in the minor unit.
MAXIMUM_CHARGE = 99_999_999
BPS_DENOMINATOR = 10_000


def exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (jpy 0, usd 2, kwd 3)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def minimum_charge(currency: str) -> int:
    """The smallest amount Stripe will charge in this currency, in minor units."""
    code = currency.lower()
    return MINIMUM_CHARGE.get(code, _DEFAULT_MINIMUM[exponent(code)])


def is_valid_amount(amount: int, currency: str) -> bool:
    """Three-decimal currencies must end in 0 (Stripe rounds to a hundredth)."""
    return exponent(currency) != 3 or amount % 10 == 0


def round_half_up_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest int, halves away from zero."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return sign * quotient


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights` by largest remainder; ties go to the lower index."""
    if not weights:
        raise ValueError("weights must not be empty")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights, weight_sum = [1] * len(weights), len(weights)
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    parts = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    short = magnitude - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        parts[i] += 1
    return [sign * p for p in parts]


def platform_fee(subtotal: int, percent_bps: int, fixed: int) -> int:
    """The platform's fee on one vendor split: round_half_up(subtotal * bps / 10000) + fixed, within [0, subtotal]."""
    if subtotal < 0 or percent_bps < 0 or fixed < 0:
        raise ValueError("subtotal, percent_bps and fixed must not be negative")
    fee = round_half_up_div(subtotal * percent_bps, BPS_DENOMINATOR) + fixed
    return min(fee, subtotal)
