"""Pure refund arithmetic: which vendor gives back what, and how much platform fee is returned.

`fee_refunded` is the rule Stripe applies to `refund_application_fee` on a destination
charge, applied per vendor split: a refund of `amount` from a split of `subtotal` whose
platform fee is `fee` returns round_half_up(amount * fee / subtotal), at most the fee
still unreturned; the refund that empties the split returns all of the fee still
unreturned. On a destination charge the split is the whole charge, so this is exactly
the fee refund Stripe makes. On separate charges the vendor's transfer is reversed by
`amount - fee_refunded` and the platform bears `fee_refunded` itself, keeping
`fee - sum(fee_refunded)`. Stripe's processing fee is never returned.
"""
from __future__ import annotations

from collections.abc import Sequence

from marketplace.money import allocate, round_half_up_div


def fee_refunded(amount: int, subtotal: int, fee: int, refunded_before: int, fee_refunded_before: int) -> int:
    """The platform fee returned with a refund of `amount` from one split."""
    fee_left = fee - fee_refunded_before
    if amount == subtotal - refunded_before:
        return max(fee_left, 0)
    return max(min(fee_left, round_half_up_div(amount * fee, subtotal)), 0)


def by_amount(amount: int, remaining: Sequence[int]) -> list[int]:
    """Split a refund across splits in proportion to what each has left (largest remainder)."""
    if amount > sum(remaining):
        raise ValueError("amount exceeds what is refundable")
    return allocate(amount, list(remaining))
