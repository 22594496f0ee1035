"""Refund allocation: parts sum to the refund, fees follow Stripe's refund_application_fee rule."""
from hypothesis import given
from hypothesis import strategies as st

from marketplace.payments.allocation import by_amount, fee_refunded


def test_fee_refund_matches_stripe_examples():
    # STRIPE.md / the emulator: 1000 with fee 123, refund 333 then the rest.
    first = fee_refunded(333, 1000, 123, 0, 0)
    assert first == 41
    assert fee_refunded(667, 1000, 123, 333, first) == 82
    assert fee_refunded(1000, 1000, 123, 0, 0) == 123


@given(st.integers(1, 10**6), st.integers(0, 10**4), st.lists(st.integers(1, 10**5), min_size=1, max_size=8))
def test_successive_refunds_return_the_whole_fee_exactly(subtotal, bps, amounts):
    fee = subtotal * bps // 10**4
    refunded = returned = 0
    for amount in amounts:
        amount = min(amount, subtotal - refunded)
        if amount <= 0:
            break
        part = fee_refunded(amount, subtotal, fee, refunded, returned)
        assert 0 <= part <= fee - returned
        refunded, returned = refunded + amount, returned + part
    if refunded < subtotal:
        returned += fee_refunded(subtotal - refunded, subtotal, fee, refunded, returned)
    assert returned == fee


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=6), st.data())
def test_allocation_sums_and_never_exceeds_what_is_left(remaining, data):
    total = sum(remaining)
    amount = data.draw(st.integers(0, total))
    parts = by_amount(amount, remaining)
    assert sum(parts) == amount
    assert all(0 <= p <= r for p, r in zip(parts, remaining))
