"""Disputes: Stripe debits the platform; the vendors' shares are recovered meanwhile and given back if won.

With DISPUTE_RECOVERY=vendor (the default) what each vendor still holds from the order (its
net, less what refunds took back, as the planner counts it) is recovered by reversals
planned once Stripe has taken the funds from the platform (an inquiry takes nothing until it
is escalated); when the dispute ends in the platform's favour (won, an inquiry closed,
prevented) what they took is transferred back (retransfers), and reversals not made yet are
never made. All of them are movements (see movements/engine). With `platform` the platform
alone bears it. Every handler re-fetches the dispute and is safe to call twice and in any
order.
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from marketplace import audit, stripe_gateway
from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.models import OPEN
from marketplace.payments import ledger_entries as entries
from marketplace.payments import planner
from marketplace.payments.locking import lock_order, payment_for_charge
from marketplace.payments.models import Dispute, DisputeRecovery
from marketplace.transaction import atomic
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)

CLOSED = ("won", "lost", "warning_closed", "prevented")
NOT_LOST = ("won", "warning_closed", "prevented")  # closed with the platform keeping the money


def _withdrawn(current: dict) -> bool:
    """Stripe has debited the platform for the dispute (never for an inquiry, until escalated)."""
    return any(int(bt["amount"]) < 0 and bt.get("type") != "stripe_fee"
               for bt in current.get("balance_transactions") or [] if isinstance(bt, dict))


def handle_dispute_created(dispute: dict) -> Dispute | None:
    """Record the platform's debit, mark the order disputed, start recovering the vendors' shares."""
    current = stripe_gateway.retrieve_dispute(dispute["id"])
    row = _ensure(current)
    if row is None:
        return None
    if current["status"] in CLOSED:
        return handle_dispute_closed(current)
    return row


def handle_dispute_updated(dispute: dict) -> Dispute | None:
    """Keep the local status in step (evidence submitted, under review ...)."""
    current = stripe_gateway.retrieve_dispute(dispute["id"])
    row = _ensure(current)
    if row is not None and current["status"] in CLOSED:
        return handle_dispute_closed(current)
    return row


def handle_dispute_funds_withdrawn(dispute: dict) -> Dispute | None:
    """The debit's balance transaction, recorded once (same as created)."""
    return handle_dispute_created(dispute)


def handle_dispute_funds_reinstated(dispute: dict) -> Dispute | None:
    """The reinstatement's balance transaction, recorded once (same as closed)."""
    return handle_dispute_closed(dispute)


@atomic
def _ensure(current: dict) -> Dispute | None:
    """The local Dispute row, created (with its ledger entries and recoveries) on first sight."""
    payment = payment_for_charge(current["charge"], current.get("payment_intent"))
    if payment is None:
        log.warning("dispute %s is on no charge of ours: ignored", current["id"])
        return None
    order = lock_order(payment.order_id)
    row = db.session.scalar(select(Dispute).where(Dispute.stripe_dispute_id == current["id"]))
    if row is None:
        row = Dispute(order_id=order.id, payment_id=payment.id, stripe_dispute_id=current["id"],
                      stripe_charge_id=current["charge"], amount=current["amount"], currency=current["currency"],
                      reason=current.get("reason"), status=current["status"],
                      recovery=current_app.config.get("DISPUTE_RECOVERY", "vendor"),
                      order_status_before=order.status)
        db.session.add(row)
        db.session.flush()
        audit.record("dispute.opened", "dispute", row.id, amount=row.amount, currency=row.currency)
        order.status = "disputed"
    elif row.status not in CLOSED:
        row.status = current["status"]
    if row.recovery == "vendor" and not row.recoveries and _withdrawn(current) and row.status not in NOT_LOST:
        _plan_recoveries(row, order)
    for bt in current.get("balance_transactions") or []:
        entries.record_dispute(bt, row.id)
    return row


def _plan_recoveries(row: Dispute, order) -> None:
    """Take back what each vendor still holds from the order (planned with the dispute row)."""
    db.session.flush()
    for position, split in enumerate(order.splits):
        amount = planner.net_held(split.id)
        if amount <= 0:
            continue
        recovery = DisputeRecovery(split_id=split.id, vendor_id=split.vendor_id, position=position, amount=amount)
        row.recoveries.append(recovery)
        db.session.flush()
        account = db.session.get(Vendor, split.vendor_id).stripe_account_id
        planner.take_back(split, amount, row.currency, account, dispute_id=row.id, recovery_id=recovery.id)


def recover(dispute_id: str) -> int:
    """(A job queued before movements) Drive the dispute's unfinished reversals."""
    ids = [m.id for m in engine.live(dispute_id=dispute_id) if m.status in OPEN]
    engine.drive_now(ids)
    return len(ids)


def handle_dispute_closed(dispute: dict) -> Dispute | None:
    """Won: the reinstatement is recorded and the vendors are paid back; lost: closed."""
    current = stripe_gateway.retrieve_dispute(dispute["id"])
    row = _ensure(current)
    return _close(row.id, current) if row is not None else None


@atomic
def _close(dispute_id: str, current: dict) -> Dispute:
    row = db.session.get(Dispute, dispute_id)
    order = lock_order(row.order_id)
    db.session.refresh(row)
    first = row.closed_at is None and current["status"] in CLOSED
    row.status = current["status"]
    if first:
        row.closed_at = utcnow()
        audit.record(f"dispute.{row.status}", "dispute", row.id, amount=current.get("amount"),
                     currency=current.get("currency"))
        if row.status in NOT_LOST and order.status == "disputed":
            order.status = row.order_status_before
    for bt in current.get("balance_transactions") or []:
        entries.record_dispute(bt, row.id)
    if first and row.status in NOT_LOST:
        give_back(row)
    return row


def give_back(row: Dispute) -> int:
    """A dispute not lost: reversals not made are never made, what the made ones took goes back."""
    for movement in engine.live(dispute_id=row.id):
        if movement.kind == "transfer_reversal" and movement.status in OPEN:
            engine.cancel(movement)
    planned = 0
    for recovery in row.recoveries:
        owed = planner.taken(recovery_id=recovery.id) - sum(
            m.amount for m in engine.live(recovery_id=recovery.id, kind="retransfer"))
        if owed > 0:
            account = db.session.get(Vendor, recovery.vendor_id).stripe_account_id
            planner.give_back(recovery.split, owed, row.currency, account, dispute_id=row.id,
                              recovery_id=recovery.id)
            planned += 1
    return planned


@atomic
def retransfer(dispute_id: str) -> int:
    """(A job queued before movements) Give back what a won dispute's reversals took."""
    row = db.session.get(Dispute, dispute_id)
    lock_order(row.order_id)
    return give_back(row) if row.status in NOT_LOST else 0
