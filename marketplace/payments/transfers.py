"""The vendors' shares: each split's transfer, and the reversals and retransfers after it.

When a payment succeeds, each split's transfer is planned as a movement: on separate charges
one we make (`source_transaction` = the charge, key `transfer-<movement id>`), on a
destination charge the one Stripe makes when the charge settles, which the movement finds.
Reversals and retransfers are planned by refunds and disputes (see planner). This module
records them when they are made: both sides in the ledger, and the split's, allocation's
or recovery's Stripe ids.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from marketplace import stripe_gateway
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.models import Movement
from marketplace.orders.models import Order, OrderSplit
from marketplace.payments import ledger_entries as entries
from marketplace.payments.locking import lock_order, payment_for_charge
from marketplace.payments.models import DisputeRecovery, Refund, RefundAllocation
from marketplace.transaction import atomic
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)


# A destination charge's transfer is recorded when the charge's settlement is booked (the read
# that books it shows the transfer); its movement looks for it itself only this late.
SETTLEMENT_WAIT = timedelta(minutes=2)


def plan_transfers(order: Order, charge_id: str, application_fee: int | None = None) -> list[Movement]:
    """The split transfers of a paid order, once (the caller holds the order lock).

    On a destination charge `application_fee` is the one Stripe takes (the payment's): the
    part of the split's platform fee it leaves out (a subscription's first invoice, finalized
    by Stripe before its fixed part could be set) is taken from Stripe's transfer by a
    `fee_collection` reversal once the transfer exists."""
    planned = []
    for split in order.splits:
        if split.vendor_net <= 0 or split.status == "canceled" or _transfer_of(split.id) is not None:
            continue
        account = db.session.get(Vendor, split.vendor_id).stripe_account_id
        params = {"transfer_group": f"order_{order.id}"}
        amount, due_in = split.vendor_net, None
        if order.charge_type == "destination":  # Stripe transfers the whole charge and keeps the fee
            params.update(by_stripe=True, application_fee=split.platform_fee)
            amount, due_in = split.subtotal, SETTLEMENT_WAIT
        transfer = engine.plan("transfer", amount, order.currency, due_in=due_in, destination=account,
                               source_id=charge_id, params=params, vendor_id=split.vendor_id,
                               order_id=order.id, split_id=split.id)
        planned.append(transfer)
        short = split.platform_fee - (application_fee or 0)
        if order.charge_type == "destination" and application_fee is not None and short > 0:
            db.session.flush()
            engine.plan("fee_collection", short, order.currency, destination=account,
                        source_movement_id=transfer.id, vendor_id=split.vendor_id, order_id=order.id,
                        split_id=split.id)
    db.session.flush()
    return planned


def record_fee_collection(m: Movement, reversal: dict, vendor_refund: dict) -> None:
    """A fee collection made: both sides of its reversal in the ledger, and what it took
    booked as the platform's fee (as the fee a separate charge keeps is)."""
    lock_order(m.order_id)
    split = db.session.get(OrderSplit, m.split_id)
    entries.record_transfer(reversal["balance_transaction"], split.vendor_id, split.id)
    entries.record_fee_collection(vendor_refund["balance_transaction"], split.vendor_id, m.destination, split.id)
    entries.record_platform_fee(split, m.amount, key=f"fee-collected-{m.id}")


def _transfer_of(split_id: str) -> Movement | None:
    return db.session.scalar(select(Movement).where(Movement.split_id == split_id, Movement.kind == "transfer"))


def transfer_movement(split_id: str) -> Movement | None:
    """The movement of the split's own transfer."""
    return _transfer_of(split_id)


def record(m: Movement, transfer: dict, vendor_payment: dict) -> None:
    """A transfer or retransfer made: both sides in the ledger, its Stripe id where it belongs."""
    lock_order(m.order_id)
    split = db.session.get(OrderSplit, m.split_id)
    entries.record_transfer(transfer["balance_transaction"], split.vendor_id, split.id)
    entries.record_vendor_payment(vendor_payment["balance_transaction"], split.vendor_id,
                                  transfer["destination"], split.id)
    if m.kind == "transfer":
        split.stripe_transfer_id = transfer["id"]
        if split.status == "pending":
            split.status = "transferred"
    elif m.allocation_id:  # what a failed refund had taken, given back
        allocation = db.session.get(RefundAllocation, m.allocation_id)
        allocation.stripe_retransfer_id = allocation.stripe_retransfer_id or transfer["id"]
    elif m.recovery_id:
        recovery = db.session.get(DisputeRecovery, m.recovery_id)
        recovery.stripe_retransfer_id = recovery.stripe_retransfer_id or transfer["id"]
    log.info("%s %s made for split %s: %s", m.kind, m.id, split.id, transfer["id"])


def record_reversal_movement(m: Movement, reversal: dict, vendor_refund: dict) -> None:
    """A reversal made: both sides in the ledger; if its refund failed or its dispute ended
    in the platform's favour while it was under way, what it took goes back to the vendor."""
    from marketplace.payments import disputes, planner, refunds

    order = lock_order(m.order_id)
    split = db.session.get(OrderSplit, m.split_id)
    entries.record_transfer(reversal["balance_transaction"], split.vendor_id, split.id)
    entries.record_vendor_payment(vendor_refund["balance_transaction"], split.vendor_id, m.destination, split.id)
    undone = False
    if m.allocation_id:
        allocation = db.session.get(RefundAllocation, m.allocation_id)
        allocation.stripe_transfer_reversal_id = allocation.stripe_transfer_reversal_id or reversal["id"]
        undone = db.session.get(Refund, m.refund_id).status == "failed"
        refunds.settle_status(m.refund_id, done=m.id)
    elif m.recovery_id:
        recovery = db.session.get(DisputeRecovery, m.recovery_id)
        recovery.stripe_transfer_reversal_id = recovery.stripe_transfer_reversal_id or reversal["id"]
        undone = recovery.dispute.status in disputes.NOT_LOST
    if undone:
        planner.give_back(split, m.amount, order.currency, m.destination, refund_id=m.refund_id,
                          allocation_id=m.allocation_id, dispute_id=m.dispute_id, recovery_id=m.recovery_id)


@atomic
def create_transfers(payment_id: str) -> int:
    """Plan the split transfers of a succeeded payment not planned yet (jobs queued before
    transfers were movements); returns how many."""
    from marketplace.payments.models import Payment

    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.status != "succeeded" or not payment.stripe_charge_id:
        return 0
    return len(plan_transfers(lock_order(payment.order_id), payment.stripe_charge_id, payment.application_fee_amount))


def handle_transfer_created(transfer: dict) -> str | None:
    """`transfer.created`: a transfer of ours is recorded by its movement; one whose answer was
    lost (even every answer: the movement needs attention) is found and recorded now. The
    movement's status, None for a transfer that is no movement's."""
    return engine.shown(transfer)


def handle_transfer_reversed(transfer: dict) -> None:
    """Reversals are recorded by the movements that make them: nothing to do here."""


def handle_application_fee_refunded(fee: dict, account: str | None = None) -> int:
    """`application_fee.refunded`: the app makes no fee refunds, but one made in the Dashboard
    (alone, or by a refund with `refund_application_fee`) gave fee revenue back: booked once,
    the platform's side and, when Stripe credited the vendor apart, the vendor's. How many."""
    fee_refunds = stripe_gateway.list_application_fee_refunds(fee["id"])
    vendor_account = fee.get("account") or account
    credits = {fr["id"]: [bt for bt in stripe_gateway.balance_transactions_of(fr["id"], vendor_account)
                          if int(bt["amount"]) > 0] for fr in fee_refunds}
    return _book_fee_refunds(fee.get("originating_transaction") or "", fee_refunds, credits, vendor_account)


@atomic
def _book_fee_refunds(charge_id: str, fee_refunds: list[dict], credits: dict, vendor_account: str) -> int:
    payment = payment_for_charge(charge_id, None)
    if payment is None:
        return 0
    order = lock_order(payment.order_id)
    split = order.splits[0]  # an application fee is a destination charge's: one vendor
    for fr in fee_refunds:
        if isinstance(fr.get("balance_transaction"), dict):
            entries.record_application_fee(fr["balance_transaction"], order.id)
        for bt in credits[fr["id"]]:
            entries.record_fee_credit(bt, split.vendor_id, vendor_account, split.id)
    return len(fee_refunds)
