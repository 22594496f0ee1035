"""money.py: exponents, rounding, allocation and fees (pure, integers only)."""
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace import money


@pytest.mark.parametrize(
    "currency, exponent",
    [("usd", 2), ("USD", 2), ("eur", 2), ("jpy", 0), ("krw", 0), ("xpf", 0), ("kwd", 3),
     ("bhd", 3), ("tnd", 3), ("gbp", 2)],
)
def test_exponents(currency, exponent):
    assert money.exponent(currency) == exponent


def test_minimum_charges_follow_stripe():
    assert [money.minimum_charge(c) for c in ("usd", "eur", "gbp", "jpy")] == [50, 50, 30, 50]
    assert money.minimum_charge("kwd") % 10 == 0
    assert money.minimum_charge("xyz") == 50


def test_three_decimal_amounts_must_end_in_zero():
    assert money.is_valid_amount(1230, "kwd") and not money.is_valid_amount(1234, "kwd")
    assert money.is_valid_amount(1234, "usd") and money.is_valid_amount(7, "jpy")


@pytest.mark.parametrize(
    "num, den, expected",
    [(5, 10, 1), (4, 10, 0), (15, 10, 2), (25, 10, 3), (-5, 10, -1), (-4, 10, 0), (0, 7, 0),
     (1000 * 1000, 10000, 100), (1005 * 1000, 10000, 101)],
)
def test_round_half_up_div(num, den, expected):
    assert money.round_half_up_div(num, den) == expected


def test_round_half_up_div_rejects_non_positive_denominator():
    with pytest.raises(ValueError):
        money.round_half_up_div(1, 0)


@given(st.integers(-10**12, 10**12), st.integers(1, 10**6))
@settings(max_examples=200)
def test_round_half_up_div_is_the_nearest_integer(num, den):
    result = money.round_half_up_div(num, den)
    exact = Fraction(num, den)
    assert abs(exact - result) <= Fraction(1, 2)
    if abs(exact - result) == Fraction(1, 2):
        assert abs(result) > abs(exact)  # halves go away from zero


@pytest.mark.parametrize(
    "total, weights, expected",
    [(100, [1, 1, 1], [34, 33, 33]), (10, [1, 0, 1], [5, 0, 5]), (7, [0, 0], [4, 3]),
     (-100, [1, 1, 1], [-34, -33, -33]), (0, [3, 5], [0, 0]), (101, [50, 50], [51, 50])],
)
def test_allocate_examples(total, weights, expected):
    assert money.allocate(total, weights) == expected


def test_allocate_rejects_empty_or_negative_weights():
    with pytest.raises(ValueError):
        money.allocate(10, [])
    with pytest.raises(ValueError):
        money.allocate(10, [1, -1])


@given(st.integers(-10**10, 10**10), st.lists(st.integers(0, 10**8), min_size=1, max_size=30))
@settings(max_examples=300)
def test_allocate_parts_sum_to_the_whole_deterministically(total, weights):
    parts = money.allocate(total, weights)
    assert sum(parts) == total and len(parts) == len(weights)
    assert parts == money.allocate(total, list(weights))
    assert all(isinstance(p, int) for p in parts)
    weight_sum = sum(weights) or len(weights)
    effective = weights if sum(weights) else [1] * len(weights)
    for part, weight in zip(parts, effective):
        # every part is within one unit of its exact share
        assert abs(Fraction(part) - Fraction(total * weight, weight_sum)) < 1


@given(st.integers(0, 10**9), st.integers(0, 10_000), st.integers(0, 10**6))
@settings(max_examples=300)
def test_fee_is_never_negative_nor_above_the_subtotal(subtotal, bps, fixed):
    fee = money.platform_fee(subtotal, bps, fixed)
    assert 0 <= fee <= subtotal
    expected = money.round_half_up_div(subtotal * bps, 10_000) + fixed
    assert fee == min(expected, subtotal)


@pytest.mark.parametrize(
    "subtotal, bps, fixed, fee",
    [(1000, 1000, 0, 100), (1005, 1000, 0, 101), (1004, 1000, 0, 100), (999, 250, 30, 55),
     (50, 1000, 100, 50), (0, 1000, 30, 0), (12345, 0, 0, 0), (12345, 10_000, 0, 12345)],
)
def test_fee_examples(subtotal, bps, fixed, fee):
    assert money.platform_fee(subtotal, bps, fixed) == fee


def test_fee_rejects_negative_inputs():
    with pytest.raises(ValueError):
        money.platform_fee(-1, 100, 0)
