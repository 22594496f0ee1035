"""Currencies, minimum amounts and Stripe's processing fee, all in integer minor units."""

ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

# Minimum charge amounts in minor units; currencies not listed use the 50-unit default of
# a two-decimal currency scaled to the exponent (see README).
MINIMUMS = {"usd": 50, "eur": 50, "gbp": 30, "jpy": 50, "cad": 50, "aud": 50, "chf": 50}
MAXIMUM = 99999999

# 2.9% + 30 cents, expressed per exponent so zero- and three-decimal currencies scale.
FEE_BPS = 290
FEE_FIXED = {0: 0, 2: 30, 3: 300}

DISPUTE_FEE = {0: 15, 2: 1500, 3: 15000}


def exponent(currency):
    """Number of decimals of a currency's minor unit."""
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def minimum(currency):
    """Smallest chargeable amount in minor units."""
    if currency in MINIMUMS:
        return MINIMUMS[currency]
    return {0: 50, 2: 50, 3: 500}[exponent(currency)]


def round_half_up_div(numerator, denominator):
    """Integer division rounding halves away from zero for non-negative numerators."""
    return (2 * numerator + denominator) // (2 * denominator)


def processing_fee(amount, currency):
    """Stripe's card processing fee: 2.9% + 30 (scaled by exponent), rounded half up."""
    exp = exponent(currency)
    fee = round_half_up_div(amount * FEE_BPS, 10000) + FEE_FIXED[exp]
    if exp == 3:
        # three-decimal amounts must end in 0, so fees do too
        fee = round_half_up_div(fee, 10) * 10
    return min(fee, amount)


def dispute_fee(currency):
    """The flat dispute fee (15.00 in the currency's major unit)."""
    return DISPUTE_FEE[exponent(currency)]


def pro_rata(part, whole, total):
    """part/whole of total, rounded half up, as an integer."""
    if whole == 0:
        return 0
    return round_half_up_div(part * total, whole)
