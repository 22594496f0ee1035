"""Admin search: one string, routed by its shape to lookups that each use an index.

A shape is a local id (`ord_...`, routed by its prefix), a Stripe id (`pi_`, `ch_`, `re_`,
`tr_`, `trr_`, `po_`, `acct_`, `dp_`, `cs_`, `cus_`, `evt_` ...), an email (users, and vendors
by their user or their own contact address) or an amount: an integer of minor units in any
currency, or a decimal read in each currency's exponent (`12.50`: 1250 cents, 12500 fils,
and no yen). Anything else finds nothing. `lookups()` is every statement a search runs, so
that their plans can be checked; an event (`evt_`, `whe_`) is followed to the objects it is
about, whose statements are `lookups()` of their ids.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select

from marketplace.auth.models import User
from marketplace.auth.service import normalize_email
from marketplace.extensions import db
from marketplace.money import THREE_DECIMAL, ZERO_DECIMAL
from marketplace.movements.models import Movement
from marketplace.orders.models import Order, OrderSplit
from marketplace.payments.models import (
    CheckoutSession, Dispute, DisputeRecovery, Payment, Refund, RefundAllocation,
)
from marketplace.payments.receipts import format_amount
from marketplace.payouts.models import Payout
from marketplace.vendors.models import Vendor
from marketplace.wallets.models import Customer
from marketplace.webhooks.models import WebhookEvent

LIMIT = 50
MAX_QUERY_LENGTH = 255
TYPES = ("order", "payment", "refund", "payout", "vendor", "user")

# Amounts fit a BIGINT however they are scaled (15 digits, times at most 10^3).
_INTEGER = re.compile(r"[0-9]{1,15}")
_DECIMAL = re.compile(r"[0-9]{1,15}\.[0-9]{1,3}")
# The fields of an event's object that name another object a search can find.
_EVENT_OBJECT_FIELDS = ("id", "payment_intent", "charge", "payout", "refund")


@dataclass(frozen=True)
class Hit:
    type: str
    id: str
    path: str
    summary: str
    created_at: datetime


def search(q: str, trace: list[Select] | None = None) -> list[Hit]:
    """What `q` finds, newest first, at most LIMIT; `trace` gets each statement run, in order."""
    hits: dict[tuple[str, str], Hit] = {}
    for row in _rows(lookups(q), trace):
        if isinstance(row, WebhookEvent):
            for object_id in event_object_ids(row):  # followed one level: an event's objects only
                for found in _rows(lookups(object_id), trace):
                    if not isinstance(found, WebhookEvent):
                        _keep(hits, found)
        else:
            _keep(hits, row)
    return sorted(hits.values(), key=lambda hit: (hit.created_at, hit.id), reverse=True)[:LIMIT]


def lookups(q: str) -> list[Select]:
    """The statements a search for `q` runs (each of one index); none for a shape it does not know."""
    q = q.strip()
    if "@" in q:
        return _by_email(normalize_email(q))
    if _INTEGER.fullmatch(q) or _DECIMAL.fullmatch(q):
        return _by_amount(q)
    prefix, _, rest = q.partition("_")
    if not rest:
        return []
    if prefix in _STRIPE_IDS:
        return _STRIPE_IDS[prefix](q)
    if prefix.lower() in _LOCAL_IDS:
        return _LOCAL_IDS[prefix.lower()](q.lower())  # local ids are lower case by construction
    return []


def event_object_ids(event: WebhookEvent) -> list[str]:
    """The Stripe ids a stored event is about: its object's, then those its object names."""
    try:
        body = json.loads(event.raw_body)
    except ValueError:
        return []
    data = body.get("data") if isinstance(body, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return []
    ids = [obj.get(name) for name in _EVENT_OBJECT_FIELDS]
    found = [i for i in ids if isinstance(i, str) and len(i) <= MAX_QUERY_LENGTH and not i.startswith("evt_")]
    return list(dict.fromkeys(found))


def amounts(q: str) -> list[tuple[int, int | None]]:
    """`(minor units, currency exponent)` pairs `q` can mean; exponent None: any currency."""
    if _INTEGER.fullmatch(q):
        return [(int(q), None)] if int(q) > 0 else []
    if not _DECIMAL.fullmatch(q):
        return []
    value, found = Decimal(q), []
    for places in (0, 2, 3):
        minor = value.scaleb(places)
        if minor > 0 and minor == minor.to_integral_value():
            found.append((int(minor), places))
    return found


def _rows(statements: list[Select], trace: list[Select] | None) -> Iterator[Any]:
    for stmt in statements:
        if trace is not None:
            trace.append(stmt)
        yield from db.session.scalars(stmt)


def _keep(hits: dict[tuple[str, str], Hit], row: Any) -> None:
    hit = _HITS[type(row)](row)
    hits[(hit.type, hit.id)] = hit


# --- Hits: what each object is called and where the API shows it ----------------------------

def _order_hit(order: Order) -> Hit:
    summary = f"{format_amount(order.total, order.currency)}, {order.status}, {order.charge_type} charge"
    return Hit("order", order.id, f"/api/orders/{order.id}", summary, order.created_at)


def _payment_hit(payment: Payment) -> Hit:
    summary = (f"{format_amount(payment.amount, payment.currency)}, {payment.status}, "
               f"{payment.payment_intent_id}, order {payment.order_id}")
    return Hit("payment", payment.id, f"/api/payments/{payment.id}", summary, payment.created_at)


def _refund_hit(refund: Refund) -> Hit:
    # No route reads one refund: its payment's details list them all.
    summary = (f"{format_amount(refund.amount, refund.currency)}, {refund.status}, {refund.reason}, "
               f"order {refund.order_id}")
    return Hit("refund", refund.id, f"/api/payments/{refund.payment_id}", summary, refund.created_at)


def _payout_hit(payout: Payout) -> Hit:
    # No route reads one payout: its run's details list them all.
    summary = (f"{format_amount(payout.amount, payout.currency)}, {payout.status}, vendor {payout.vendor_id}"
               f"{', dry run' if payout.dry_run else ''}")
    return Hit("payout", payout.id, f"/api/admin/payout-runs/{payout.run_id}", summary, payout.created_at)


def _vendor_hit(vendor: Vendor) -> Hit:
    # No route reads one vendor for an admin: the admin list, filtered to its status, shows it.
    summary = f"{vendor.display_name}, {vendor.status}, {vendor.stripe_account_id or 'no Stripe account'}"
    return Hit("vendor", vendor.id, f"/api/admin/vendors?status={vendor.status}", summary, vendor.created_at)


def _user_hit(user: User) -> Hit:
    # No route reads a user for an admin: the audit log of what the user did is the nearest.
    return Hit("user", user.id, f"/api/admin/audit-log?actor={user.id}", f"{user.email}, {user.role}",
               user.created_at)


_HITS: dict[type, Callable[[Any], Hit]] = {
    Order: _order_hit, Payment: _payment_hit, Refund: _refund_hit, Payout: _payout_hit,
    Vendor: _vendor_hit, User: _user_hit,
}


# --- Lookups by shape ---------------------------------------------------------------------------

def _by_email(email: str) -> list[Select]:
    return [
        select(User).where(User.email == email),  # stored normalized (auth.service.normalize_email)
        select(Vendor).join(User, User.id == Vendor.user_id).where(User.email == email),
        select(Vendor).where(func.lower(Vendor.email) == email),
    ]


def _by_amount(q: str) -> list[Select]:
    statements = []
    for amount, places in amounts(q):
        for model, column in ((Order, Order.total), (Payment, Payment.amount), (Refund, Refund.amount),
                              (Payout, Payout.amount)):
            conditions = [column == amount, *_of_exponent(model.currency, places)]
            if model is Payout:
                conditions.append(Payout.dry_run.is_(False))
            statements.append(select(model).where(*conditions).order_by(model.created_at.desc()).limit(LIMIT))
    return statements


def _of_exponent(currency: Any, places: int | None) -> list[ColumnElement[bool]]:
    """The condition that `currency` has `places` decimals (none: any currency)."""
    if places is None:
        return []
    if places == 0:
        return [currency.in_(sorted(ZERO_DECIMAL))]
    if places == 3:
        return [currency.in_(sorted(THREE_DECIMAL))]
    return [currency.not_in(sorted(ZERO_DECIMAL | THREE_DECIMAL))]


def _disputed(condition: ColumnElement[bool]) -> list[Select]:
    """The payment and the order of the disputes matching `condition`."""
    return [
        select(Payment).join(Dispute, Dispute.payment_id == Payment.id).where(condition),
        select(Order).join(Dispute, Dispute.order_id == Order.id).where(condition),
    ]


def _recovered(condition: ColumnElement[bool]) -> list[Select]:
    """The disputed payment of the dispute recoveries matching `condition`."""
    return [select(Payment).join(Dispute, Dispute.payment_id == Payment.id)
            .join(DisputeRecovery, DisputeRecovery.dispute_id == Dispute.id).where(condition)]


def _allocated(condition: ColumnElement[bool]) -> list[Select]:
    """The refunds of the refund allocations matching `condition`."""
    return [select(Refund).join(RefundAllocation, RefundAllocation.refund_id == Refund.id).where(condition)]


def _moved(condition: ColumnElement[bool]) -> list[Select]:
    """What the movements matching `condition` were made for: a refund, a payout, a dispute's
    payment, or else (a transfer) the order."""
    return [
        select(Refund).join(Movement, Movement.refund_id == Refund.id).where(condition),
        *_moved_payout(condition),
        select(Payment).join(Dispute, Dispute.payment_id == Payment.id)
        .join(Movement, Movement.dispute_id == Dispute.id).where(condition),
        select(Order).join(Movement, Movement.order_id == Order.id)
        .where(condition, Movement.refund_id.is_(None), Movement.dispute_id.is_(None)),
    ]


def _moved_payout(condition: ColumnElement[bool]) -> list[Select]:
    return [select(Payout).join(Movement, Movement.payout_id == Payout.id).where(condition)]


def _stripe_refund(q: str) -> list[Select]:
    return [select(Refund).where(Refund.stripe_refund_id == q), *_moved(Movement.stripe_id == q)]


def _split_order(condition: ColumnElement[bool]) -> list[Select]:
    return [select(Order).join(OrderSplit, OrderSplit.order_id == Order.id).where(condition)]


def _session_order(condition: ColumnElement[bool]) -> list[Select]:
    return [select(Order).join(CheckoutSession, CheckoutSession.order_id == Order.id).where(condition)]


def _customer_user(condition: ColumnElement[bool]) -> list[Select]:
    return [select(User).join(Customer, Customer.user_id == User.id).where(condition)]


_STRIPE_IDS: dict[str, Callable[[str], list[Select]]] = {
    "pi": lambda q: [select(Payment).where(Payment.payment_intent_id == q),
                     select(Order).where(Order.payment_intent_id == q)],
    "ch": lambda q: [select(Payment).where(Payment.stripe_charge_id == q),
                     select(Order).join(Payment, Payment.order_id == Order.id).where(Payment.stripe_charge_id == q)],
    "re": _stripe_refund,
    "pyr": _stripe_refund,
    "tr": lambda q: [*_split_order(OrderSplit.stripe_transfer_id == q),
                     *_allocated(RefundAllocation.stripe_retransfer_id == q),
                     *_recovered(DisputeRecovery.stripe_retransfer_id == q), *_moved(Movement.stripe_id == q)],
    "trr": lambda q: [*_allocated(RefundAllocation.stripe_transfer_reversal_id == q),
                      *_allocated(RefundAllocation.stripe_shortfall_reversal_id == q),
                      *_recovered(DisputeRecovery.stripe_transfer_reversal_id == q), *_moved(Movement.stripe_id == q)],
    "fr": lambda q: _moved(Movement.stripe_id == q),
    "po": lambda q: [select(Payout).where(Payout.stripe_payout_id == q), *_moved_payout(Movement.stripe_id == q)],
    "acct": lambda q: [select(Vendor).where(Vendor.stripe_account_id == q)],
    "dp": lambda q: _disputed(Dispute.stripe_dispute_id == q),
    "cs": lambda q: [*_session_order(CheckoutSession.stripe_session_id == q),
                     select(Payment).where(Payment.checkout_session_id == q)],
    "cus": lambda q: _customer_user(Customer.stripe_customer_id == q),
    "evt": lambda q: [select(WebhookEvent).where(WebhookEvent.stripe_event_id == q)],
}

_LOCAL_IDS: dict[str, Callable[[str], list[Select]]] = {
    "ord": lambda q: [select(Order).where(Order.id == q)],
    "pay": lambda q: [select(Payment).where(Payment.id == q)],
    "rfd": lambda q: [select(Refund).where(Refund.id == q)],
    "pout": lambda q: [select(Payout).where(Payout.id == q)],
    "ven": lambda q: [select(Vendor).where(Vendor.id == q)],
    "usr": lambda q: [select(User).where(User.id == q), select(Vendor).where(Vendor.user_id == q)],
    "spl": lambda q: _split_order(OrderSplit.id == q),
    "chk": lambda q: _session_order(CheckoutSession.id == q),
    "ral": lambda q: _allocated(RefundAllocation.id == q),
    "dsp": lambda q: _disputed(Dispute.id == q),
    "drc": lambda q: _recovered(DisputeRecovery.id == q),
    "mov": lambda q: _moved(Movement.id == q),
    "prun": lambda q: [select(Payout).where(Payout.run_id == q).order_by(Payout.created_at.desc()).limit(LIMIT)],
    "cst": lambda q: _customer_user(Customer.id == q),
    "whe": lambda q: [select(WebhookEvent).where(WebhookEvent.id == q)],
}
