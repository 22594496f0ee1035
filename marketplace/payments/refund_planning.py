"""How much a refund takes from each vendor split, and the platform fee it returns.

Pure planning on the order's rows (under its lock): a refund by amount is spread over what
each split still has to refund (largest remainder); by items it takes each item's price;
the platform fee returned follows `allocation.fee_refunded`. What is then taken back from
each vendor, and from which transfer, is the planner's (`planner.take_back`).
"""
from __future__ import annotations

from sqlalchemy import select

from marketplace.errors import AppError, ValidationFailed
from marketplace.extensions import db
from marketplace.orders.models import Order
from marketplace.payments import allocation
from marketplace.payments.models import Refund, RefundAllocation

# Refunds whose money is committed (counted against what is refundable).
LIVE = ("pending", "succeeded", "requires_action")


class RefundExceedsRefundable(AppError):
    status, code, message = 422, "refund_exceeds_refundable", "The refund exceeds what is still refundable."


def allocations(order: Order, amount: int | None, items: list[dict]) -> tuple[list[RefundAllocation], list[dict]]:
    """The refund's allocations (each split's share and fee returned), and its item lines;
    each split's `refunded` grows by its share (the caller holds the order lock)."""
    parts, lines = _plan(order, amount, items)
    out = []
    for split in order.splits:
        share = parts.get(split.id, 0)
        if share <= 0:
            continue
        fee = allocation.fee_refunded(share, split.subtotal, split.platform_fee, split.refunded,
                                      _fee_refunded_before(split.id))
        out.append(RefundAllocation(split_id=split.id, vendor_id=split.vendor_id, position=len(out),
                                    amount=share, platform_fee_refunded=fee))
        split.refunded += share
    return out, lines


def _plan(order: Order, amount: int | None, items: list[dict]) -> tuple[dict[str, int], list[dict]]:
    """Per split id, how much this refund takes; and the item lines when refunding by items."""
    remaining = {s.id: s.subtotal - s.refunded for s in order.splits}
    if items:
        return _plan_items(order, items, remaining)
    available = sum(remaining.values())
    if amount is None:
        amount = available
    if amount <= 0 or amount > available:
        raise RefundExceedsRefundable(details={"requested": amount, "refundable": available})
    ids = list(remaining)
    return dict(zip(ids, allocation.by_amount(amount, [remaining[i] for i in ids]))), []


def _plan_items(order: Order, items: list[dict], remaining: dict[str, int]) -> tuple[dict[str, int], list[dict]]:
    by_id = {item.id: item for item in order.items}
    done = _refunded_quantities(order.id)
    parts: dict[str, int] = {}
    lines = []
    for index, line in enumerate(items):
        item = by_id.get(line["order_item_id"])
        if item is None:
            raise ValidationFailed(details={"items": {str(index): {"order_item_id": ["Not an item of this order."]}}})
        left = item.quantity - done.get(item.id, 0)
        if line["quantity"] > left:
            raise RefundExceedsRefundable(details={"order_item_id": item.id, "refundable_quantity": left})
        done[item.id] = done.get(item.id, 0) + line["quantity"]
        parts[item.split_id] = parts.get(item.split_id, 0) + item.unit_price * line["quantity"]
        lines.append({"order_item_id": item.id, "quantity": line["quantity"],
                      "amount": item.unit_price * line["quantity"]})
    over = {sid: amt for sid, amt in parts.items() if amt > remaining[sid]}
    if over:
        raise RefundExceedsRefundable(details={"splits": over})
    return parts, lines


def _refunded_quantities(order_id: str) -> dict[str, int]:
    done: dict[str, int] = {}
    for lines in db.session.scalars(select(Refund.items).where(Refund.order_id == order_id, Refund.status.in_(LIVE))):
        for line in lines or []:
            done[line["order_item_id"]] = done.get(line["order_item_id"], 0) + line["quantity"]
    return done


def _fee_refunded_before(split_id: str) -> int:
    rows = db.session.scalars(
        select(RefundAllocation.platform_fee_refunded).join(Refund)
        .where(RefundAllocation.split_id == split_id, Refund.status.in_(LIVE))
    )
    return sum(rows)


def order_status_from_splits(order: Order) -> None:
    """The splits' and the order's status from what is refunded (reserved) on each."""
    refunded = sum(s.refunded for s in order.splits)
    for split in order.splits:
        if split.refunded == split.subtotal and split.status != "canceled":
            split.status = "reversed"
        elif split.status == "reversed":
            split.status = "transferred" if split.stripe_transfer_id else "pending"
    if order.status in ("paid", "partially_refunded", "refunded"):
        order.status = "paid" if refunded == 0 else ("refunded" if refunded >= order.total else "partially_refunded")
