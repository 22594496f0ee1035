"""Pricing an order from catalog lines: per-vendor splits, frozen fees, Stripe's amount limits.

Pure functions (no database): the service feeds them rows and persists the result.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from marketplace import money
from marketplace.errors import ValidationFailed


@dataclass(frozen=True)
class Line:
    product_id: str
    vendor_id: str
    name: str
    unit_price: int
    quantity: int

    @property
    def amount(self) -> int:
        return self.unit_price * self.quantity


@dataclass
class SplitDraft:
    vendor_id: str
    percent_bps: int
    fixed: int
    lines: list[Line] = field(default_factory=list)

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def platform_fee(self) -> int:
        return money.platform_fee(self.subtotal, self.percent_bps, self.fixed)

    @property
    def vendor_net(self) -> int:
        return self.subtotal - self.platform_fee


@dataclass
class OrderDraft:
    currency: str
    lines: list[Line]
    splits: list[SplitDraft]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def platform_fee(self) -> int:
        return sum(split.platform_fee for split in self.splits)

    @property
    def charge_type(self) -> str:
        return "destination" if len(self.splits) == 1 else "separate_transfers"


def merge_lines(items: Iterable[Mapping]) -> list[tuple[str, int, int]]:
    """(product_id, quantity, index of its first line): repeated products are added together."""
    merged: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        entry = merged.setdefault(item["product_id"], [0, index])
        entry[0] += item["quantity"]
    return [(pid, qty, first) for pid, (qty, first) in merged.items()]


def build_draft(
    currency: str, lines: list[Line], policies: Mapping[str, tuple[int, int]]
) -> OrderDraft:
    """Group lines by vendor (in order of first appearance) with each vendor's fee policy."""
    splits: dict[str, SplitDraft] = {}
    for line in lines:
        if line.vendor_id not in splits:
            bps, fixed = policies[line.vendor_id]
            splits[line.vendor_id] = SplitDraft(line.vendor_id, bps, fixed)
        splits[line.vendor_id].lines.append(line)
    return OrderDraft(currency=currency, lines=list(lines), splits=list(splits.values()))


def check_total(total: int, currency: str) -> None:
    """422 amount_too_small / amount_too_large outside what Stripe will charge."""
    minimum = money.minimum_charge(currency)
    if total < minimum:
        raise ValidationFailed(
            f"The order total is below the minimum charge for {currency}.",
            code="amount_too_small",
            details={"total": [f"Must be at least {minimum} ({currency} minor units)."],
                     "minimum": minimum, "currency": currency},
        )
    if total > money.MAXIMUM_CHARGE:
        raise ValidationFailed(
            f"The order total is above the maximum charge for {currency}.",
            code="amount_too_large",
            details={"total": [f"Must be at most {money.MAXIMUM_CHARGE} ({currency} minor units)."],
                     "maximum": money.MAXIMUM_CHARGE, "currency": currency},
        )
