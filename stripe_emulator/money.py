"""Currencies, minimum amounts, Stripe's processing fee and currency conversion, all in
integer minor units (conversion rates are Decimals: money is never a float here)."""
from decimal import ROUND_HALF_UP, Decimal

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


# Fixed test exchange rates: the US dollar value of one major unit of each currency.
USD_PER_UNIT = {
    "usd": "1", "eur": "1.08", "gbp": "1.27", "chf": "1.13", "cad": "0.73", "aud": "0.66",
    "nzd": "0.60", "sgd": "0.74", "hkd": "0.128", "sek": "0.095", "nok": "0.093",
    "dkk": "0.145", "pln": "0.25", "czk": "0.043", "huf": "0.0028", "mxn": "0.058",
    "brl": "0.20", "inr": "0.012", "jpy": "0.0067", "krw": "0.00075", "clp": "0.0011",
    "kwd": "3.25", "bhd": "2.65", "jod": "1.41", "omr": "2.60", "tnd": "0.32",
}


def exchange_rate(src, dst):
    """How many major units of `dst` one major unit of `src` buys (a Decimal)."""
    return Decimal(USD_PER_UNIT.get(src, "1")) / Decimal(USD_PER_UNIT.get(dst, "1"))


def convert(amount, src, dst):
    """`amount` minor units of `src` in minor units of `dst`, rounded half up (three-decimal
    currencies to a multiple of 10)."""
    if src == dst:
        return amount
    major = Decimal(amount).scaleb(-exponent(src)) * exchange_rate(src, dst)
    minor = major.scaleb(exponent(dst)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if exponent(dst) == 3:
        minor = (minor / 10).quantize(Decimal(1), rounding=ROUND_HALF_UP) * 10
    return int(minor)


def display_rate(src, dst):
    """The `exchange_rate` a balance transaction shows (a number, as Stripe's API has it)."""
    return float(exchange_rate(src, dst).quantize(Decimal("0.000001")))
