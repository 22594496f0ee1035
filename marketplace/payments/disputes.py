"""Disputes: Stripe debits the platform; the vendors' shares are recovered meanwhile and given back if won.

With DISPUTE_RECOVERY=vendor (the default) each vendor's share still held (its net less
what refunds already took back) is recovered by a transfer reversal (key
`dispute-reversal-<recovery.id>`; on a destination charge the destination transfer is
reversed); when the dispute is won it is transferred again (key
`dispute-retransfer-<recovery.id>`). With `platform` the platform alone bears it.
Every handler re-fetches the dispute and is safe to call twice and in any order.
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from marketplace import audit, outbox, stripe_gateway
from marketplace.database import utcnow
from marketplace.errors import Conflict
from marketplace.extensions import db
from marketplace.payments import ledger_entries as entries
from marketplace.payments import transfers
from marketplace.payments.locking import lock_order, payment_for_charge
from marketplace.payments.models import Dispute, DisputeRecovery, RefundAllocation, Refund
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)

CLOSED = ("won", "lost", "warning_closed")


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


def _ensure(current: dict) -> Dispute | None:
    """The local Dispute row, created (with its ledger entries and recoveries) on first sight."""
    payment = payment_for_charge(current["charge"], current.get("payment_intent"))
    if payment is None:
        db.session.rollback()
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
        if row.recovery == "vendor":
            _plan_recoveries(row, order)
        order.status = "disputed"
    elif row.status not in CLOSED:
        row.status = current["status"]
    for bt in current.get("balance_transactions") or []:
        entries.record_dispute(bt, row.id)
    dispute_id = row.id
    if row.recovery == "vendor" and row.status not in CLOSED:
        from jobs.payments import recover_dispute

        outbox.add(recover_dispute, dispute_id)
    db.session.commit()
    return db.session.get(Dispute, dispute_id)


def _plan_recoveries(row: Dispute, order) -> None:
    for position, split in enumerate(order.splits):
        taken = sum(db.session.scalars(
            select(RefundAllocation.amount - RefundAllocation.platform_fee_refunded).join(Refund)
            .where(RefundAllocation.split_id == split.id, Refund.status.in_(("pending", "succeeded")))
        ))
        amount = split.vendor_net - taken
        if amount > 0:
            row.recoveries.append(DisputeRecovery(split_id=split.id, vendor_id=split.vendor_id,
                                                  position=position, amount=amount))


def recover(dispute_id: str) -> int:
    """Reverse each vendor's recovered share (job); returns how many reversals were made."""
    row = db.session.get(Dispute, dispute_id)
    todo = [(r.id, r.split.stripe_transfer_id, r.amount, r.vendor_id) for r in row.recoveries
            if r.stripe_transfer_reversal_id is None]
    order_id = row.order_id
    made = 0
    for recovery_id, transfer_id, amount, vendor_id in todo:
        if transfer_id is None:
            raise Conflict("The vendor's transfer is not made yet; retried later.", code="transfer_pending")
        account = db.session.get(Vendor, vendor_id).stripe_account_id
        db.session.commit()
        reversal, vendor_refund = transfers.reverse(
            transfer_id, amount, f"dispute-reversal-{recovery_id}", account, {"dispute_id": dispute_id})
        lock_order(order_id)
        recovery = db.session.get(DisputeRecovery, recovery_id)
        transfers.record_reversal(recovery.split, reversal, vendor_refund, account)
        recovery.stripe_transfer_reversal_id = reversal["id"]
        db.session.commit()
        made += 1
    return made


def handle_dispute_closed(dispute: dict) -> Dispute | None:
    """Won: the reinstatement is recorded and the vendors are paid back; lost: closed."""
    current = stripe_gateway.retrieve_dispute(dispute["id"])
    row = _ensure(current)
    if row is None:
        return None
    order = lock_order(row.order_id)
    db.session.refresh(row)
    first = row.closed_at is None and current["status"] in CLOSED
    row.status = current["status"]
    if first:
        row.closed_at = utcnow()
        audit.record(f"dispute.{row.status}", "dispute", row.id, amount=current.get("amount"),
                     currency=current.get("currency"))
        if row.status == "won" and order.status == "disputed":
            order.status = row.order_status_before
    for bt in current.get("balance_transactions") or []:
        entries.record_dispute(bt, row.id)
    if row.status == "won" and row.recoveries:
        from jobs.payments import retransfer_dispute

        outbox.add(retransfer_dispute, row.id)
    dispute_id = row.id
    db.session.commit()
    return db.session.get(Dispute, dispute_id)


def retransfer(dispute_id: str) -> int:
    """Transfer the recovered shares back to the vendors after a won dispute (job)."""
    row = db.session.get(Dispute, dispute_id)
    if row.status != "won":
        db.session.rollback()
        return 0
    todo = [(r.id, r.split_id, r.amount, r.vendor_id) for r in row.recoveries
            if r.stripe_transfer_reversal_id and not r.stripe_retransfer_id]
    order_id, currency = row.order_id, row.currency
    for recovery_id, split_id, amount, vendor_id in todo:
        account = db.session.get(Vendor, vendor_id).stripe_account_id
        db.session.commit()
        # Drawn on the platform's available balance (the charge's own transfers already used
        # it up); when that is short, Stripe refuses and the outbox retries the job later.
        transfer = stripe_gateway.create_transfer(
            {"amount": amount, "currency": currency, "destination": account,
             "transfer_group": f"order_{order_id}", "expand": ["balance_transaction"],
             "metadata": {"dispute_id": dispute_id, "split_id": split_id}},
            f"dispute-retransfer-{recovery_id}")
        payment = transfers.vendor_side(transfer)
        lock_order(order_id)
        recovery = db.session.get(DisputeRecovery, recovery_id)
        entries.record_transfer(transfer["balance_transaction"], vendor_id, split_id)
        entries.record_vendor_payment(payment["balance_transaction"], vendor_id, account, split_id)
        recovery.stripe_retransfer_id = transfer["id"]
        db.session.commit()
    return len(todo)
