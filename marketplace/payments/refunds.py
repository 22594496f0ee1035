"""Refunds: committed with the movements that make them, answered with what is committed.

A refund is reserved under the order's row lock (so concurrent refunds can never exceed
what is refundable), its allocations planned (refund_planning), and in the same
transaction its movements: the refund of the charge (key `refund-<movement id>`), then,
after it, the reversals taking each vendor's share back from its transfer objects
(planner). Once that commits the answer is the refund, `pending` while its movements run,
`succeeded` when they are done: the engine drives them (here at once, and by the worker's
sweep until they end); an unknown outcome is retried under the same key, never taken for
a failure.

A refund Stripe refuses, or one that fails later (`refund.failed`), gives its reservation
back: reversals not made are never made, each vendor gets back by a retransfer what the
refund had taken from it, and the platform fee it had returned is the platform's again.
A refund made outside the API (in Stripe's Dashboard) is adopted (see adoption.py).
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from marketplace import audit, idempotency, stripe_gateway
from marketplace.auth.models import User
from marketplace.errors import AppError, Conflict, NotFound
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.models import OPEN, Movement
from marketplace.payments import ledger_entries as entries
from marketplace.payments import planner
from marketplace.payments.locking import lock_order, payment_for_charge
from marketplace.payments.models import Payment, Refund
from marketplace.payments.refund_planning import allocations, order_status_from_splits
from marketplace.transaction import atomic
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)

REFUNDABLE_ORDER = ("paid", "partially_refunded")


def create_refund(user: User, order_id: str, reason: str, amount: int | None = None,
                  items: list[dict] | None = None) -> Refund:
    """Commit the refund and its movements, try them here, and answer with the refund."""
    refund_id = idempotency.recovered("refund") or _reserve(user, order_id, reason, amount, items or [])
    engine.drive_now([m.id for m in _movements(refund_id, OPEN)])
    return db.session.get(Refund, refund_id, populate_existing=True)


@atomic
def _reserve(user: User, order_id: str, reason: str, amount: int | None, items: list[dict]) -> str:
    order = lock_order(order_id)
    if order is None:
        raise NotFound("No such order.", code="order_not_found")
    payment = order.payment_summary
    if order.status not in REFUNDABLE_ORDER or payment is None:
        raise Conflict("Only a paid order can be refunded.", code="order_not_paid", details={"status": order.status})
    shares, lines = allocations(order, amount, items)
    refund = Refund(order_id=order.id, payment_id=payment.id, created_by=user.id if user else None,
                    amount=sum(a.amount for a in shares), currency=order.currency, reason=reason, items=lines,
                    allocations=shares)
    db.session.add(refund)
    order_status_from_splits(order)
    db.session.flush()
    made = engine.plan("refund", refund.amount, refund.currency, source_id=payment.stripe_charge_id,
                       params={"reason": reason}, order_id=order.id, refund_id=refund.id)
    db.session.flush()
    take_back(refund, after_id=made.id)
    idempotency.bind("refund", refund.id)
    audit.record("refund.created", "refund", refund.id, amount=refund.amount, currency=refund.currency)
    return refund.id


def take_back(refund: Refund, **links) -> None:
    """Plan the reversals of every vendor's share (net of the platform fee returned)."""
    for share in refund.allocations:
        account = db.session.get(Vendor, share.vendor_id).stripe_account_id
        planner.take_back(share.split, share.reversal_amount, refund.currency, account,
                          refund_id=refund.id, allocation_id=share.id, **links)


def _movements(refund_id: str, statuses) -> list[Movement]:
    return list(db.session.scalars(select(Movement).where(Movement.refund_id == refund_id,
                                                          Movement.status.in_(statuses))
                                   .order_by(Movement.kind != "refund", Movement.created_at, Movement.id)))


def record(m: Movement, made: dict) -> None:
    """The refund movement's answer: Stripe's refund recorded, the platform fee returned booked."""
    lock_order(m.order_id)
    refund = db.session.get(Refund, m.refund_id)
    refund.stripe_refund_id = made["id"]
    _advance(refund, made["status"])
    book(refund, made)
    for share in refund.allocations:  # on either charge type the platform gives back its fee
        entries.record_platform_fee(share.split, share.platform_fee_refunded,
                                    key=f"platform-fee-refund-{share.id}", refund=True)
    if refund.stripe_status in ("failed", "canceled"):
        _fail(refund, made.get("failure_reason") or made["status"])
    settle_status(refund.id, done=m.id)


# Stripe's refund states in the order they can follow one another.
_RANK = {"requires_action": 0, "pending": 1, "succeeded": 2, "failed": 3, "canceled": 3}


def _advance(refund: Refund, status: str) -> None:
    """Stripe's state of the refund, moved forward only: a late or replayed answer (an
    idempotent replay of the first `pending`) never takes it back."""
    if refund.stripe_status is None or _RANK.get(status, -1) > _RANK.get(refund.stripe_status, -1):
        refund.stripe_status = status


def book(refund: Refund, made: dict) -> None:
    for bt in (made.get("balance_transaction"), made.get("failure_balance_transaction")):
        if isinstance(bt, dict):
            entries.record_refund(bt, refund.id)


def settle_status(refund_id: str, done: str | None = None) -> None:
    """`succeeded` once Stripe's refund succeeded and none of its movements is unfinished
    (`done`: the movement finishing now, not marked yet); `pending` until then."""
    refund = db.session.get(Refund, refund_id)
    if refund.status in ("failed", "canceled"):
        return
    unfinished = [m for m in _movements(refund_id, OPEN + ("needs_attention",)) if m.id != done]
    refund.status = "succeeded" if refund.stripe_status == "succeeded" and not unfinished else "pending"


def refused(m: Movement, error: AppError) -> None:
    """Stripe refused the refund outright: nothing moved, the reservation is given back."""
    lock_order(m.order_id)
    _fail(db.session.get(Refund, m.refund_id), (error.details or {}).get("stripe_code") or error.code)


def _fail(refund: Refund, reason: str | None) -> None:
    """A refund that did not happen, or failed after it did (caller holds the order lock), once."""
    if refund.status in ("failed", "canceled"):
        return
    order = lock_order(refund.order_id)
    refund.status, refund.failure_reason = "failed", (reason or "")[:1000]
    for share in refund.allocations:
        share.split.refunded -= share.amount
    order_status_from_splits(order)
    for movement in _movements(refund.id, OPEN):
        if movement.kind == "transfer_reversal":  # never made now: found if an attempt made it
            engine.cancel(movement)
    if refund.stripe_refund_id:  # it was made: the vendors and the platform get back their part
        for share in refund.allocations:
            entries.record_platform_fee(share.split, share.platform_fee_refunded,
                                        key=f"platform-fee-restore-{share.id}")
        give_back_taken(refund)
    audit.record("refund.failed", "refund", refund.id, amount=refund.amount, currency=refund.currency)


def give_back_taken(refund: Refund) -> int:
    """Plan a retransfer of what the refund's reversals took and nothing gave back yet."""
    planned = 0
    for share in refund.allocations:
        owed = planner.taken(allocation_id=share.id) - sum(
            m.amount for m in engine.live(allocation_id=share.id, kind="retransfer"))
        if owed > 0:
            account = db.session.get(Vendor, share.vendor_id).stripe_account_id
            planner.give_back(share.split, owed, refund.currency, account, refund_id=refund.id,
                              allocation_id=share.id)
            planned += 1
    return planned


@atomic
def retransfer_failed(refund_id: str) -> int:
    """(A job queued before movements) Give the vendors back what a failed refund took."""
    refund = db.session.get(Refund, refund_id)
    lock_order(refund.order_id)
    return give_back_taken(refund) if refund.status == "failed" and refund.stripe_refund_id else 0


def complete_refund(refund_id: str) -> str:
    """(A job queued before movements) Drive the refund's unfinished movements."""
    engine.drive_now([m.id for m in _movements(refund_id, OPEN)])
    return db.session.get(Refund, refund_id).status


def local_refund(stripe_refund: dict) -> Refund | None:
    local_id = (stripe_refund.get("metadata") or {}).get("refund_id")
    found = db.session.scalar(select(Refund).where(Refund.stripe_refund_id == stripe_refund["id"]))
    return found or (db.session.get(Refund, local_id) if local_id else None)


def handle_refund_updated(refund: dict) -> str | None:
    """A refund's status changed at Stripe: a pending one succeeded (booked now), or it failed."""
    current = stripe_gateway.retrieve_refund(refund["id"], expand=["balance_transaction", "failure_balance_transaction"])
    local_id, unrecorded = _local_of(current)
    if local_id is None:
        return None
    if unrecorded:  # its movement has not recorded it yet (its answer was lost): that first
        engine.shown(current)
    return _apply_update(local_id, current)


@atomic
def _local_of(current: dict) -> tuple[str | None, bool]:
    local = local_refund(current)
    return (local.id, local.stripe_refund_id is None) if local else (None, False)


@atomic
def _apply_update(local_id: str, current: dict) -> str:
    lock_order(db.session.get(Refund, local_id).order_id)
    local = db.session.get(Refund, local_id)
    local.stripe_refund_id = local.stripe_refund_id or current["id"]
    _advance(local, current["status"])
    book(local, current)
    if local.stripe_status in ("failed", "canceled"):
        _fail(local, current.get("failure_reason") or current["status"])
    settle_status(local_id)
    return local.status


def handle_refund_failed(refund: dict) -> str | None:
    """`refund.failed`: the same as an update to failed."""
    return handle_refund_updated(refund)


def list_refunds(order_id: str) -> list[Refund]:
    """An order's refunds, oldest first."""
    return list(db.session.scalars(select(Refund).where(Refund.order_id == order_id).order_by(Refund.created_at)))
