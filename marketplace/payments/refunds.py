"""Refunds: whole, by amount or by items, allocated across vendor splits, then taken back from vendors.

A refund is reserved under the order's row lock (so concurrent refunds can never exceed
what is refundable), committed, and then made at Stripe with no transaction open: the
charge is refunded first (key `refund-<refund.id>`), then the vendors' money is taken
back: on a destination charge by Stripe itself (`reverse_transfer` and
`refund_application_fee`), on separate charges by one transfer reversal per allocation
(key `reversal-<allocation.id>`). A job completes whatever a crash or an outage left
undone. How the platform fee returned is computed: see `allocation`.

A refund Stripe made can still fail later (`refund.failed`): the shopper got nothing and the
money is back on the platform, so a job transfers back to each vendor what the refund had
taken from it (`retransfer_failed`), and reversals not made yet are never made. On a
destination charge that earlier reversal stays at Stripe, so a later refund's own reversal
falls short by as much; `_reverse_shortfall` takes the rest from the retransfer.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from jobs.payments import retransfer_failed_refund as retransfer_failed_refund_job
from marketplace import audit, idempotency, outbox, stripe_gateway
from marketplace.auth.models import User
from marketplace.errors import AppError, Conflict, NotFound, ValidationFailed
from marketplace.extensions import db
from marketplace.orders.models import Order
from marketplace.payments import allocation, transfers
from marketplace.payments import ledger_entries as entries
from marketplace.payments.locking import lock_order, payment_for_charge
from marketplace.payments.models import Payment, Refund, RefundAllocation
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)

REFUNDABLE_ORDER = ("paid", "partially_refunded")
LIVE = ("pending", "succeeded", "requires_action")
REFUND_EXPAND = ["balance_transaction", "transfer_reversal.balance_transaction", "charge"]


class RefundExceedsRefundable(AppError):
    status, code, message = 422, "refund_exceeds_refundable", "The refund exceeds what is still refundable."


def create_refund(user: User, order_id: str, reason: str, amount: int | None = None,
                  items: list[dict] | None = None) -> Refund:
    """Reserve the refund under the order lock, then make it at Stripe; returns the Refund."""
    recovered = idempotency.recovered("refund")
    if recovered:
        complete_refund(recovered)
        return db.session.get(Refund, recovered)
    refund_id = _reserve(user, order_id, reason, amount, items or [])
    complete_refund(refund_id)
    return db.session.get(Refund, refund_id)


def _reserve(user: User, order_id: str, reason: str, amount: int | None, items: list[dict]) -> str:
    order = lock_order(order_id)
    if order is None:
        db.session.rollback()
        raise NotFound("No such order.", code="order_not_found")
    if order.status not in REFUNDABLE_ORDER or order.payment_summary is None:
        db.session.rollback()
        raise Conflict("Only a paid order can be refunded.", code="order_not_paid", details={"status": order.status})
    parts, lines = _plan(order, amount, items)
    refund = Refund(order_id=order.id, payment_id=order.payment_summary.id, created_by=user.id,
                    amount=sum(parts.values()), currency=order.currency, reason=reason, items=lines)
    position = 0
    for split in order.splits:
        share = parts.get(split.id, 0)
        if share <= 0:
            continue
        fee = allocation.fee_refunded(share, split.subtotal, split.platform_fee, split.refunded,
                                      _fee_refunded_before(split.id))
        refund.allocations.append(RefundAllocation(
            split_id=split.id, vendor_id=split.vendor_id, position=position, amount=share,
            platform_fee_refunded=fee))
        split.refunded += share
        position += 1
    db.session.add(refund)
    _order_status_from_splits(order)
    db.session.flush()
    idempotency.bind("refund", refund.id)
    from jobs.payments import complete_refund as complete_job

    outbox.add(complete_job, refund.id)  # completes it if this process stops half way
    audit.record("refund.created", "refund", refund.id, amount=refund.amount, currency=refund.currency)
    db.session.commit()
    return refund.id


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


def _order_status_from_splits(order: Order) -> None:
    refunded = sum(s.refunded for s in order.splits)
    for split in order.splits:
        if split.refunded == split.subtotal and split.status != "canceled":
            split.status = "reversed"
        elif split.status == "reversed":
            split.status = "transferred" if split.stripe_transfer_id else "pending"
    if order.status in ("paid", "partially_refunded", "refunded"):
        order.status = "paid" if refunded == 0 else ("refunded" if refunded >= order.total else "partially_refunded")


def complete_refund(refund_id: str) -> str:
    """Make (or find) the refund at Stripe, take the vendors' shares back, record it all; returns its status."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status in ("failed", "canceled") or _finished(refund):
        db.session.rollback()
        return refund.status if refund else "missing"
    payment = db.session.get(Payment, refund.payment_id)
    params, existing = _stripe_params(refund, payment), refund.stripe_refund_id
    db.session.commit()  # no transaction stays open over the network calls
    if existing:  # made already: read back, never created again (its key expires after 24 h)
        made = stripe_gateway.retrieve_refund(existing, expand=REFUND_EXPAND)
    else:
        try:
            made = stripe_gateway.create_refund(params, f"refund-{refund_id}")
        except (stripe_gateway.StripeFailure, ValidationFailed) as error:
            _fail(refund_id, error.message)
            raise
    _record(refund_id, made)
    if payment.charge_type == "separate_transfers":
        _reverse_transfers(refund_id)
    else:
        _reverse_shortfall(refund_id, made)
    return db.session.get(Refund, refund_id).status


def _finished(refund: Refund) -> bool:
    if refund.stripe_refund_id is None:
        return False
    destination = db.session.get(Payment, refund.payment_id).charge_type == "destination"
    return all((a.stripe_transfer_reversal_id or a.reversal_amount <= 0)
               and (not destination or a.stripe_shortfall_reversal_id or not _retransfers(a.split_id))
               for a in refund.allocations)


def _retransfers(split_id: str) -> list[RefundAllocation]:
    """The split's allocations of failed refunds whose reversal was transferred back, oldest first."""
    return list(db.session.scalars(
        select(RefundAllocation).where(RefundAllocation.split_id == split_id,
                                       RefundAllocation.stripe_retransfer_id.is_not(None))
        .order_by(RefundAllocation.id)))


def _reverse_shortfall(refund_id: str, made: dict) -> None:
    """Destination charge after a failed refund: take back what Stripe's reversal could not.

    Stripe reverses the original transfer pro rata, capped by what is left of it, and an
    earlier failed refund used part of that up (its reversal stays; the vendor got the money
    back by a separate transfer). The difference between this allocation's share and what
    Stripe's reversal took is reversed from those retransfers (key
    `refund-shortfall-<allocation.id>-<n>`), and the fee Stripe could not return is
    recorded as returned all the same.
    """
    alloc = db.session.get(Refund, refund_id).allocations[0]
    sources = [(r.id, r.stripe_retransfer_id) for r in _retransfers(alloc.split_id)]
    if not sources or alloc.stripe_shortfall_reversal_id or not made.get("transfer_reversal"):
        db.session.rollback()
        return
    alloc_id, order_id, expected, expected_fee = alloc.id, alloc.refund.order_id, alloc.reversal_amount, alloc.platform_fee_refunded
    account = db.session.get(Vendor, alloc.vendor_id).stripe_account_id
    db.session.commit()
    taken = transfers.vendor_refund(made["transfer_reversal"], account)["balance_transaction"]
    short, short_fee = expected + int(taken["net"]), expected_fee + int(taken["fee"])
    last = None
    for n, (_, transfer_id) in enumerate(sources):
        if short <= 0:
            break
        left = stripe_gateway.retrieve_transfer(transfer_id)
        amount = min(short, left["amount"] - left["amount_reversed"])
        if amount <= 0:
            continue
        last, vendor_refund = transfers.reverse(transfer_id, amount, f"refund-shortfall-{alloc_id}-{n}", account,
                                                {"refund_id": refund_id, "allocation_id": alloc_id})
        lock_order(order_id)
        transfers.record_reversal(db.session.get(RefundAllocation, alloc_id).split, last, vendor_refund, account)
        db.session.commit()
        short -= amount
    lock_order(order_id)
    alloc = db.session.get(RefundAllocation, alloc_id)
    entries.record_platform_fee(alloc.split, short_fee, key=f"platform-fee-shortfall-{alloc_id}", refund=True)
    alloc.stripe_shortfall_reversal_id = last["id"] if last else f"none-{alloc_id}"
    db.session.commit()


def _stripe_params(refund: Refund, payment: Payment) -> dict:
    params = {"charge": payment.stripe_charge_id, "amount": refund.amount, "reason": refund.reason,
              "metadata": {"order_id": refund.order_id, "refund_id": refund.id}, "expand": REFUND_EXPAND}
    if payment.charge_type == "destination":
        params.update(reverse_transfer=True, refund_application_fee=True)
    return params


def _record(refund_id: str, made: dict) -> None:
    """Record the Stripe refund and, on a destination charge, the reversal and fee refunds."""
    reversal = made.get("transfer_reversal")
    refund = db.session.get(Refund, refund_id)
    account = None
    if reversal:
        account = db.session.get(Vendor, refund.allocations[0].vendor_id).stripe_account_id
    db.session.commit()
    vendor_refund = transfers.vendor_refund(reversal, account) if reversal else None
    charge = made.get("charge") or {}
    fee_refunds = stripe_gateway.list_application_fee_refunds(charge["application_fee"]) \
        if reversal and charge.get("application_fee") else []
    order = lock_order(refund.order_id)
    refund = db.session.get(Refund, refund_id)
    refund.stripe_refund_id = made["id"]
    if refund.status == "pending":
        refund.status = made["status"]
    if made.get("balance_transaction"):
        entries.record_refund(made["balance_transaction"], refund.id)
    if reversal:
        alloc = refund.allocations[0]
        transfers.record_reversal(alloc.split, reversal, vendor_refund, account)
        alloc.stripe_transfer_reversal_id = reversal["id"]
        for fee_refund in fee_refunds:
            entries.record_application_fee(fee_refund["balance_transaction"], order.id)
    else:
        for alloc in refund.allocations:
            entries.record_platform_fee(alloc.split, alloc.platform_fee_refunded,
                                        key=f"platform-fee-refund-{alloc.id}", refund=True)
    db.session.commit()


def _reverse_transfers(refund_id: str) -> None:
    """Separate charges: reverse each vendor's transfer by its share less the fee returned."""
    refund = db.session.get(Refund, refund_id)
    todo = [(a.id, a.split_id, a.split.stripe_transfer_id, a.reversal_amount, a.vendor_id)
            for a in refund.allocations if not a.stripe_transfer_reversal_id and a.reversal_amount > 0]
    order_id = refund.order_id
    for alloc_id, split_id, transfer_id, amount, vendor_id in todo:
        if transfer_id is None:
            raise Conflict("The vendor's transfer is not made yet; retried later.", code="transfer_pending")
        account = db.session.get(Vendor, vendor_id).stripe_account_id
        lock_order(order_id)
        failed = db.session.get(Refund, refund_id).status == "failed"
        db.session.commit()
        if failed:  # the shopper got nothing back: take nothing more from the vendors
            return
        reversal, vendor_refund = transfers.reverse(
            transfer_id, amount, f"reversal-{alloc_id}", account, {"refund_id": refund_id, "allocation_id": alloc_id})
        lock_order(order_id)
        alloc = db.session.get(RefundAllocation, alloc_id)
        transfers.record_reversal(alloc.split, reversal, vendor_refund, account)
        alloc.stripe_transfer_reversal_id = reversal["id"]
        if alloc.refund.status == "failed":  # it failed while this reversal was under way
            outbox.add(retransfer_failed_refund_job, refund_id)
        db.session.commit()


def _fail(refund_id: str, reason: str | None, made: dict | None = None) -> None:
    """A refund that did not happen: its reservation is released (once).

    `made` is the Stripe refund when Stripe made it and it failed later (its balance
    transactions expanded): the money came back to the platform, so what the refund took
    from the vendors is transferred back to them by a job (retransfer_failed).
    """
    refund = db.session.get(Refund, refund_id)
    order = lock_order(refund.order_id)
    db.session.refresh(refund)
    if refund.status not in ("failed", "canceled"):
        refund.status = "failed"
        refund.failure_reason = (reason or "")[:1000]
        for alloc in refund.allocations:
            alloc.split.refunded -= alloc.amount
        _order_status_from_splits(order)
        if made is not None:
            outbox.add(retransfer_failed_refund_job, refund.id)
    if made is not None:
        refund.stripe_refund_id = refund.stripe_refund_id or made["id"]
        for bt in (made.get("balance_transaction"), made.get("failure_balance_transaction")):
            if isinstance(bt, dict):
                entries.record_refund(bt, refund.id)
    db.session.commit()


def retransfer_failed(refund_id: str) -> int:
    """Give the vendors back what a failed refund took from them; returns the transfers made.

    Whatever the refund got done before it failed is recorded first (as complete_refund
    would), then, per allocation whose transfer was reversed, one transfer of what the vendor
    lost (key `refund-retransfer-<allocation.id>`), and the platform fee the refund had
    returned is the platform's again. Drawn on the platform's available balance, where the
    failed refund's money went back; when that is short, Stripe refuses and the job is retried.
    """
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != "failed" or refund.stripe_refund_id is None:
        db.session.rollback()
        return 0
    payment = db.session.get(Payment, refund.payment_id)
    destination = payment.charge_type == "destination"
    stripe_refund_id, order_id, currency = refund.stripe_refund_id, refund.order_id, payment.currency
    db.session.commit()
    made = stripe_gateway.retrieve_refund(stripe_refund_id, expand=REFUND_EXPAND)
    _record(refund_id, made)
    refund = db.session.get(Refund, refund_id)
    todo = [(a.id, a.split_id, a.vendor_id, a.reversal_amount, a.platform_fee_refunded)
            for a in refund.allocations if a.stripe_transfer_reversal_id and not a.stripe_retransfer_id]
    db.session.commit()
    for alloc_id, split_id, vendor_id, amount, fee in todo:
        account = db.session.get(Vendor, vendor_id).stripe_account_id
        db.session.commit()
        if destination:  # what the vendor lost is its side of the reversal, net of the fee returned
            lost = transfers.vendor_refund(made["transfer_reversal"], account)["balance_transaction"]
            amount, fee = -int(lost["net"]), -int(lost["fee"])
        transfer = stripe_gateway.create_transfer(
            {"amount": amount, "currency": currency, "destination": account,
             "transfer_group": f"order_{order_id}", "expand": ["balance_transaction"],
             "metadata": {"order_id": order_id, "refund_id": refund_id, "allocation_id": alloc_id,
                          "split_id": split_id}},
            f"refund-retransfer-{alloc_id}")
        vendor_payment = transfers.vendor_side(transfer)
        lock_order(order_id)
        alloc = db.session.get(RefundAllocation, alloc_id)
        entries.record_transfer(transfer["balance_transaction"], vendor_id, split_id)
        entries.record_vendor_payment(vendor_payment["balance_transaction"], vendor_id, account, split_id)
        entries.record_platform_fee(alloc.split, fee, key=f"platform-fee-restore-{alloc_id}")
        alloc.stripe_retransfer_id = transfer["id"]
        audit.record("refund.vendor_retransferred", "refund", refund_id, amount=amount, currency=currency)
        db.session.commit()
    if not destination:  # the fee an unreversed allocation had returned is kept again too
        lock_order(order_id)
        for alloc in db.session.get(Refund, refund_id).allocations:
            if not alloc.stripe_transfer_reversal_id:
                entries.record_platform_fee(alloc.split, alloc.platform_fee_refunded,
                                            key=f"platform-fee-restore-{alloc.id}")
        db.session.commit()
    return len(todo)


def _local_refund(stripe_refund: dict) -> Refund | None:
    local_id = (stripe_refund.get("metadata") or {}).get("refund_id")
    found = db.session.scalar(select(Refund).where(Refund.stripe_refund_id == stripe_refund["id"]))
    return found or (db.session.get(Refund, local_id) if local_id else None)


def handle_refund_updated(refund: dict) -> str | None:
    """A refund's status changed at Stripe; a failed one gives its reservation back."""
    current = stripe_gateway.retrieve_refund(refund["id"], expand=["balance_transaction", "failure_balance_transaction"])
    local = _local_refund(current)
    if local is None:
        db.session.rollback()
        return None
    if current["status"] in ("failed", "canceled"):
        _fail(local.id, current.get("failure_reason") or current["status"], current)
    elif current["status"] == "succeeded":
        # A refund Stripe held as pending (insufficient funds, processing) is booked when it
        # goes through: its balance transaction only exists from then on.
        lock_order(local.order_id)
        db.session.refresh(local)
        if local.status == "pending":
            local.status = "succeeded"
        if isinstance(current.get("balance_transaction"), dict):
            entries.record_refund(current["balance_transaction"], local.id)
        db.session.commit()
    return db.session.get(Refund, local.id).status


def handle_refund_failed(refund: dict) -> str | None:
    """`refund.failed`: the same as an update to failed."""
    return handle_refund_updated(refund)


def handle_charge_refunded(charge: dict) -> int:
    """Complete our refunds of the charge; a refund made outside the API is recorded in the ledger."""
    refunds = stripe_gateway.list_refunds(charge["id"])
    payment = payment_for_charge(charge["id"], charge.get("payment_intent"))
    if payment is None:
        db.session.rollback()
        return 0
    for stripe_refund in refunds:
        local = _local_refund(stripe_refund)
        if local is not None:
            complete_refund(local.id)
        elif stripe_refund.get("balance_transaction"):
            log.warning("refund %s was made outside the API: recorded, not allocated", stripe_refund["id"])
            lock_order(payment.order_id)
            entries.record_refund(stripe_refund["balance_transaction"], stripe_refund["id"])
            db.session.commit()
    return len(refunds)


def list_refunds(order_id: str) -> list[Refund]:
    """An order's refunds, oldest first."""
    return list(db.session.scalars(select(Refund).where(Refund.order_id == order_id).order_by(Refund.created_at)))
