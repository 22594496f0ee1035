"""Separate charges and transfers: one transfer per vendor split once the charge succeeded.

Run from a job after the payment's commit. Stripe is called with no transaction open; each
transfer's idempotency key is `transfer-<split.id>`, so a retry (the job's or the stripe
package's own) returns the transfer already made instead of making a second one.
"""
from __future__ import annotations

import logging

from marketplace import stripe_gateway
from marketplace.extensions import db
from marketplace.orders.models import Order, OrderSplit
from marketplace.payments import ledger_entries as entries
from marketplace.payments.locking import lock_order
from marketplace.payments.models import Payment
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)


def create_transfers(payment_id: str) -> int:
    """Make every missing transfer of a succeeded separate-charges payment; returns how many."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.status != "succeeded" or not payment.stripe_charge_id:
        db.session.rollback()
        return 0
    order = db.session.get(Order, payment.order_id)
    todo = [(s.id, s.vendor_id, s.vendor_net) for s in order.splits
            if s.stripe_transfer_id is None and s.vendor_net > 0 and s.status == "pending"]
    order_id, charge_id, currency = order.id, payment.stripe_charge_id, order.currency
    made = 0
    for split_id, vendor_id, amount in todo:
        account = db.session.get(Vendor, vendor_id).stripe_account_id
        db.session.commit()  # no transaction stays open over the network call
        params = {"amount": amount, "currency": currency, "destination": account,
                  "transfer_group": f"order_{order_id}", "source_transaction": charge_id,
                  "metadata": {"order_id": order_id, "split_id": split_id},
                  "expand": ["balance_transaction"]}
        transfer = stripe_gateway.create_transfer(params, f"transfer-{split_id}")
        record_transfer(order_id, split_id, transfer)
        made += 1
    return made


def vendor_side(transfer: dict) -> dict:
    """The `py_` payment a transfer left on the vendor's account, with its balance transaction."""
    return stripe_gateway.retrieve_charge(
        transfer["destination_payment"], account=transfer["destination"], expand=["balance_transaction"]
    )


def record_transfer(order_id: str, split_id: str, transfer: dict) -> None:
    """Record a split's transfer (both sides in the ledger) in one short transaction."""
    payment = vendor_side(transfer)
    lock_order(order_id)
    split = db.session.get(OrderSplit, split_id)
    entries.record_transfer(transfer["balance_transaction"], split.vendor_id, split.id)
    entries.record_vendor_payment(payment["balance_transaction"], split.vendor_id,
                                  transfer["destination"], split.id)
    split.stripe_transfer_id = transfer["id"]
    if split.status == "pending":
        split.status = "transferred"
    db.session.commit()
    log.info("split %s transferred: %s", split_id, transfer["id"])


def reverse(transfer_id: str, amount: int, key: str, account: str, metadata: dict) -> tuple[dict, dict]:
    """Reverse part of a transfer; returns the reversal and the vendor's `pyr_` refund."""
    reversal = stripe_gateway.create_transfer_reversal(
        transfer_id, {"amount": amount, "metadata": metadata, "expand": ["balance_transaction"]}, key
    )
    return reversal, vendor_refund(reversal, account)


def vendor_refund(reversal: dict, account: str) -> dict:
    """The `pyr_` refund a reversal left on the vendor's account, with its balance transaction."""
    return stripe_gateway.retrieve_refund(
        reversal["destination_payment_refund"], account=account, expand=["balance_transaction"]
    )


def record_reversal(split, reversal: dict, vendor_refund_obj: dict, account: str) -> None:
    """Both sides of a transfer reversal in the ledger (caller holds the order lock)."""
    entries.record_transfer(reversal["balance_transaction"], split.vendor_id, split.id)
    entries.record_vendor_payment(vendor_refund_obj["balance_transaction"], split.vendor_id, account, split.id)


def handle_transfer_created(transfer: dict) -> bool:
    """A transfer of ours whose recording was interrupted is recorded now; True when it was."""
    metadata = transfer.get("metadata") or {}
    split_id = metadata.get("split_id")
    split = db.session.get(OrderSplit, split_id) if split_id else None
    # A dispute's or a failed refund's retransfer is recorded by the job that makes it.
    if split is None or split.stripe_transfer_id is not None or metadata.get("dispute_id") or metadata.get("refund_id"):
        db.session.rollback()
        return False
    order_id = split.order_id
    db.session.commit()
    current = stripe_gateway.retrieve_transfer(transfer["id"], expand=["balance_transaction"])
    record_transfer(order_id, split_id, current)
    return True


def handle_transfer_reversed(transfer: dict) -> None:
    """Reversals are recorded by the refund or dispute that makes them: nothing to do here."""


def handle_application_fee_refunded(fee: dict) -> None:
    """Fee refunds are recorded with the refund that makes them: nothing to do here."""
