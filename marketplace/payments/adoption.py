"""Refunds made outside the API (in Stripe's Dashboard), seen through `charge.refunded`.

Each is adopted once: recorded as a Refund with its allocations (as ours are), booked, and
the vendors' shares taken back through the planner, so they keep only their share of what
the shopper kept. A Dashboard refund of a destination charge may have reversed the vendor's
transfer itself (`reverse_transfer`, with `refund_application_fee` the platform's fee part
too): then Stripe's reversal is what took the vendor's share. It is recorded as a movement
Stripe made (found, never sent), of what the vendor lost, and no reversal of ours is planned.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from marketplace import audit, stripe_gateway
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.models import Movement
from marketplace.payments import ledger_entries as entries
from marketplace.payments import planner, refunds
from marketplace.payments.locking import lock_order, payment_for_charge
from marketplace.payments.models import Payment, Refund
from marketplace.payments.refund_planning import allocations, order_status_from_splits
from marketplace.transaction import atomic
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)


def handle_charge_refunded(charge: dict) -> int:
    """Our refunds of the charge are finished by their movements; one made outside the API
    is adopted. Returns how many refunds the charge has."""
    made = stripe_gateway.list_refunds(charge["id"])
    payment_id, transfer_id, destination = _charge_of(charge)
    if payment_id is None:
        return 0
    for stripe_refund in made:
        if stripe_refund["status"] not in ("succeeded", "pending"):
            continue
        if _known(stripe_refund):  # ours: recorded by its movement, now if its answer was lost
            engine.shown(stripe_refund)
        else:
            reversal = _stripe_reversal(stripe_refund, transfer_id, destination)  # no transaction open
            _adopt(payment_id, stripe_refund, reversal)
    return len(made)


@atomic
def _charge_of(charge: dict) -> tuple[str | None, str | None, str | None]:
    """(payment id, the destination transfer's id and account) of one of our charges."""
    payment = payment_for_charge(charge["id"], charge.get("payment_intent"))
    if payment is None:
        return None, None, None
    transfer = next((m for m in db.session.scalars(select(Movement).where(
        Movement.order_id == payment.order_id, Movement.kind == "transfer")) if m.by_stripe), None)
    return (payment.id, *((transfer.stripe_id, transfer.destination) if transfer else (None, None)))


@atomic
def _known(stripe_refund: dict) -> bool:
    return refunds.local_refund(stripe_refund) is not None


def _stripe_reversal(made: dict, transfer_id: str | None, destination: str | None) -> dict | None:
    """The reversal of the destination transfer Stripe made with the refund, with what it took
    from the vendor (`lost`: its side, net of the fee Stripe returned to it), or None."""
    wanted = made.get("transfer_reversal")
    wanted = wanted["id"] if isinstance(wanted, dict) else wanted
    if not wanted or transfer_id is None:
        return None
    for reversal in stripe_gateway.list_transfer_reversals(transfer_id):
        if reversal["id"] == wanted:
            vendor_side = stripe_gateway.retrieve_refund(reversal["destination_payment_refund"],
                                                         account=destination, expand=["balance_transaction"])
            return {"reversal": reversal, "lost": -int(vendor_side["balance_transaction"]["net"])}
    log.error("refund %s names reversal %s, which transfer %s does not have", made["id"], wanted, transfer_id)
    return None


@atomic
def _adopt(payment_id: str, made: dict, by_stripe: dict | None) -> None:
    payment = db.session.get(Payment, payment_id)
    order = lock_order(payment.order_id)
    if refunds.local_refund(made) is not None:  # adopted meanwhile
        return
    refundable = sum(s.subtotal - s.refunded for s in order.splits)
    if made["amount"] > refundable:
        log.error("refund %s (%d) exceeds what order %s has left to refund (%d): recorded, %d allocated",
                  made["id"], made["amount"], order.id, refundable, refundable)
    shares, _ = allocations(order, min(made["amount"], refundable), []) if refundable else ([], [])
    refund = Refund(order_id=order.id, payment_id=payment.id, created_by=None, amount=made["amount"],
                    currency=order.currency, reason=made.get("reason") or "requested_by_customer", items=[],
                    allocations=shares, stripe_refund_id=made["id"], stripe_status=made["status"])
    db.session.add(refund)
    order_status_from_splits(order)
    db.session.flush()
    db.session.add(Movement(kind="refund", status="succeeded", amount=made["amount"], currency=refund.currency,
                            source_id=payment.stripe_charge_id, stripe_id=made["id"], order_id=order.id,
                            refund_id=refund.id, params={"by_stripe": True, "reason": refund.reason}))
    refunds.book(refund, made)
    if by_stripe is not None and shares:
        _taken_by_stripe(refund, shares[0], by_stripe)
    else:
        for share in shares:
            entries.record_platform_fee(share.split, share.platform_fee_refunded,
                                        key=f"platform-fee-refund-{share.id}", refund=True)
        refunds.take_back(refund)
    refunds.settle_status(refund.id)
    audit.record("refund.adopted", "refund", refund.id, amount=refund.amount, currency=refund.currency)
    log.warning("refund %s made outside the API adopted as %s", made["id"], refund.id)


def _taken_by_stripe(refund: Refund, share, by_stripe: dict) -> None:
    """Stripe reversed the vendor's transfer itself: its reversal is the take-back (what the
    vendor lost; the fee it returned is booked from its own balance transaction). What it
    left on the transfer, short of the refund, is fee the platform had collected beyond
    Stripe's application fee (`fee_collection`): returned with the refund, as the API's
    refunds return the fee. A collection not made yet is not wanted once the refund empties
    the split (its fee goes back with it)."""
    reversal, lost = by_stripe["reversal"], by_stripe["lost"]
    share.platform_fee_refunded = max(0, share.amount - lost)
    entries.record_platform_fee(share.split, max(0, share.amount - int(reversal["amount"])),
                                key=f"platform-fee-refund-{share.id}", refund=True)
    if share.split.refunded >= share.split.subtotal:
        for collection in engine.live(split_id=share.split_id, kind="fee_collection"):
            engine.cancel(collection)
    source = planner.holdings(share.split.id)[0].movement
    account = db.session.get(Vendor, share.vendor_id).stripe_account_id
    engine.plan("transfer_reversal", lost, refund.currency, destination=account, source_id=source.stripe_id,
                source_movement_id=source.id, vendor_id=share.vendor_id, order_id=refund.order_id,
                split_id=share.split_id, refund_id=refund.id, allocation_id=share.id,
                params={"by_stripe": True, "stripe_reversal": reversal["id"]})
