"""What to take back from a vendor, or give back, computed from what actually moved.

A vendor's money from an order sits in transfer objects: the split's transfer (made by us
on separate charges, by Stripe on a destination charge) and the retransfers that later
gave money back (after a failed refund, a won dispute). Each holds its amount less the
reversals drawn on it, counting every movement planned, under way or done (never one that
failed). Taking money back draws net amounts on those objects in order, the split's own
transfer first; so any sequence of refunds, failed refunds and disputes ends with each
vendor holding exactly its share of what the shopper kept.

Destination and separate charges go through the same code. A destination charge's
transfer is the whole charge, of which Stripe kept the application fee for the platform:
what the vendor holds on it is what is left less that fee. The platform fee a refund
returns is booked as on separate charges (an internal entry, see ledger_entries), so the
reversal is of the vendor's net loss and the application fee object is left as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.models import LIVE, Movement
from marketplace.orders.models import OrderSplit

SOURCES = ("transfer", "retransfer")


@dataclass
class Holding:
    """One transfer object of a split and what the vendor still holds on it."""

    movement: Movement
    held: int


def holdings(split_id: str) -> list[Holding]:
    """The split's transfer objects with what the vendor holds on each, its own transfer first."""
    sources = list(db.session.scalars(
        select(Movement).where(Movement.split_id == split_id, Movement.kind.in_(SOURCES),
                               Movement.status.in_(LIVE))
        .order_by((Movement.kind == "retransfer").asc(), Movement.created_at, Movement.id)))
    out = []
    for source in sources:
        fee = int(source.params.get("application_fee") or 0)
        out.append(Holding(source, source.amount - fee - _reversed(source.id)))
    return out


def _reversed(source_id: str) -> int:
    """What the live reversals of one transfer take back."""
    return int(db.session.scalar(select(func.coalesce(func.sum(Movement.amount), 0)).where(
        Movement.source_movement_id == source_id, Movement.kind == "transfer_reversal",
        Movement.status.in_(LIVE))))


def net_held(split_id: str) -> int:
    """What the vendor still holds from the split."""
    return sum(h.held for h in holdings(split_id))


def take_back(split: OrderSplit, amount: int, currency: str, account: str, **links) -> list[Movement]:
    """Plan reversals taking `amount` from the vendor's transfer objects, in order."""
    planned = []
    for holding in holdings(split.id):
        if amount <= 0:
            break
        part = min(amount, holding.held)
        if part <= 0:
            continue
        planned.append(engine.plan(
            "transfer_reversal", part, currency, destination=account, source_id=holding.movement.stripe_id,
            source_movement_id=holding.movement.id, vendor_id=split.vendor_id, order_id=split.order_id,
            split_id=split.id, **links))
        db.session.flush()
        amount -= part
    return planned


def give_back(split: OrderSplit, amount: int, currency: str, account: str, **links) -> Movement:
    """Plan a retransfer of `amount` to the vendor (drawn on the platform's balance)."""
    return engine.plan("retransfer", amount, currency, destination=account,
                       params={"transfer_group": f"order_{split.order_id}"}, vendor_id=split.vendor_id,
                       order_id=split.order_id, split_id=split.id, **links)


def taken(**links) -> int:
    """What the succeeded reversals matching `links` took from the vendor."""
    return int(db.session.scalar(select(func.coalesce(func.sum(Movement.amount), 0)).where(
        Movement.kind == "transfer_reversal", Movement.status == "succeeded",
        *[getattr(Movement, k) == v for k, v in links.items()])))
